package observe

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// LogFile is an append-only log file that rotates itself: past MaxBytes the
// file is renamed to <path>.1 (replacing the previous one) and a new one is
// started, so a shipper that follows the file (the CloudWatch agent) sees a
// rename, and the disk holds at most two files.
type LogFile struct {
	path     string
	maxBytes int64
	mu       sync.Mutex
	f        *os.File
	size     int64
}

// OpenLogFile opens path for appending (creating it and its directory,
// readable by the owner and group only) and rotates past maxBytes.
func OpenLogFile(path string, maxBytes int64) (*LogFile, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("log file %s: maxBytes must be positive", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	l := &LogFile{path: path, maxBytes: maxBytes}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p (one log record: records are never split between files).
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *LogFile) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	return l.open()
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
