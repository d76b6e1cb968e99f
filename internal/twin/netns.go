package twin

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNamespace runs fn on an OS thread that has entered network namespace
// ns (as `ip netns` names it): sockets fn opens live in ns. The thread
// is never handed back to the scheduler — it exits with the goroutine —
// so no other goroutine ever runs in the twin's network by accident.
func inNamespace(ns string, fn func()) error {
	f, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with this goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}
