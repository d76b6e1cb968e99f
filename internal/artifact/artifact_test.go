package artifact

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenHashesTheBuild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conduit")
	require.NoError(t, os.WriteFile(path, []byte("test"), 0o755))
	a, err := Open(path)
	require.NoError(t, err)
	assert.Equal(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", a.SHA256)
	assert.Equal(t, int64(4), a.Size)
	assert.Equal(t, "conduit/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/conduit-linux-arm64", a.Key())
}

func TestMissingBuildSaysHowToBuildIt(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run `make build`")
	_, err = Open(t.TempDir())
	require.Error(t, err, "a directory is not a build")
}
