// Package artifact identifies the build the program deploys: the file, and
// its sha256, which names the release everywhere (S3 key, user data,
// verification on the instance).
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// BuildCommand builds the artefact the program expects by default.
const BuildCommand = "make build"

// Artifact is one build.
type Artifact struct {
	Path   string
	SHA256 string // hex
	Size   int64
}

// Open hashes the build at path; a missing file is an error that says how
// to build it.
func Open(path string) (*Artifact, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("artifact %s does not exist: run `%s` first (or set artifactPath)", path, BuildCommand)
	}
	if err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat artifact: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("artifact %s is not a non-empty file: run `%s`", path, BuildCommand)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash artifact: %w", err)
	}
	return &Artifact{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: st.Size()}, nil
}

// Key is the S3 object key of the build: a new build is a new key.
func (a *Artifact) Key() string { return "conduit/" + a.SHA256 + "/conduit-linux-arm64" }
