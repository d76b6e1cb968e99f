package cloudinit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrLinterMissing means cloud-init or shellcheck is not installed.
var ErrLinterMissing = errors.New("cloud-init or shellcheck not installed (apt-get install cloud-init shellcheck)")

// Lint checks a rendered document the way an instance would see it:
// `cloud-init schema` on the whole document and shellcheck on the install
// script. It needs both tools on PATH.
func Lint(doc string) error {
	ci, err1 := exec.LookPath("cloud-init")
	sc, err2 := exec.LookPath("shellcheck")
	if err1 != nil || err2 != nil {
		return ErrLinterMissing
	}
	dir, err := os.MkdirTemp("", "cloudinit-lint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	docPath := filepath.Join(dir, "user-data")
	if err := os.WriteFile(docPath, []byte(doc), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(ci, "schema", "--config-file", docPath).CombinedOutput(); err != nil {
		return fmt.Errorf("cloud-init schema: %v\n%s", err, out)
	}
	script, err := Script(doc)
	if err != nil {
		return err
	}
	scriptPath := filepath.Join(dir, "conduit-install")
	if err := os.WriteFile(scriptPath, []byte(script), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(sc, "--shell=bash", "--severity=style", scriptPath).CombinedOutput(); err != nil {
		return fmt.Errorf("shellcheck: %v\n%s", err, out)
	}
	return nil
}
