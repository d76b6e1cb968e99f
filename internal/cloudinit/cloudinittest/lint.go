// Package cloudinittest checks rendered user data the way an instance
// would see it; tests only (it runs cloud-init, shellcheck and
// systemd-analyze), so it stays out of the program's build.
package cloudinittest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"webstack/internal/cloudinit"
)

// ErrLinterMissing means cloud-init or shellcheck is not installed.
var ErrLinterMissing = errors.New("cloud-init or shellcheck not installed (apt-get install cloud-init shellcheck)")

// Lint checks a rendered document the way an instance would see it:
// `cloud-init schema` on the whole document, shellcheck on the install
// script (both required on PATH) and, where systemd is installed,
// `systemd-analyze verify` on the unit.
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
	script, err := cloudinit.Script(doc)
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
	return verifyUnit(doc, dir)
}

// verifyUnit runs `systemd-analyze verify` on the unit, where systemd is
// installed, with ExecStart pointed at an existing program (the real one is
// only there after the install script has run). Unknown directives, which
// systemd would silently ignore, count as failures.
func verifyUnit(doc, dir string) error {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return nil
	}
	unit, err := cloudinit.File(doc, cloudinit.UnitFile)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "conduit.service")
	unit = strings.ReplaceAll(unit, "ExecStart="+cloudinit.Binary, "ExecStart=/bin/true")
	if err := os.WriteFile(path, []byte(unit), 0o600); err != nil {
		return err
	}
	// --man=no: Documentation= is not looked up in this machine's man
	// pages. Only what is said of this unit counts: systemd-analyze also
	// speaks of the units it loads beside it (this machine's own, which
	// differ from machine to machine).
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, path) || strings.Contains(line, "conduit.service") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		return fmt.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	return nil
}

// Check lints doc in a test. Missing linters skip the test on a developer's
// machine and fail it in CI (CI set), where make test installs them.
func Check(t testing.TB, doc string) {
	t.Helper()
	err := Lint(doc)
	if errors.Is(err, ErrLinterMissing) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Errorf("user data does not lint: %v\n%s", err, doc)
	}
}
