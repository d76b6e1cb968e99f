package observe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogFileRotatesWholeRecordsAndKeepsTwoFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "conduit.log")
	l, err := OpenLogFile(path, 100)
	require.NoError(t, err)
	record := strings.Repeat("x", 39) + "\n" // 40 bytes
	for range 7 {
		_, err := l.Write([]byte(record))
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	cur, err := os.ReadFile(path)
	require.NoError(t, err)
	old, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat(record, 1), string(cur), "7 records: 2, 2, 2 rotated away, 1 here")
	assert.Equal(t, strings.Repeat(record, 2), string(old))
	matches, _ := filepath.Glob(path + "*")
	assert.Len(t, matches, 2)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), st.Mode().Perm())

	// Reopened, it appends.
	l, err = OpenLogFile(path, 100)
	require.NoError(t, err)
	_, err = l.Write([]byte(record))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	cur, _ = os.ReadFile(path)
	assert.Equal(t, strings.Repeat(record, 2), string(cur))
}
