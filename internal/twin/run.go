package twin

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// State is where a running twin keeps its files: .twin/<stack>.
type State string

func (s State) path(p ...string) string { return filepath.Join(append([]string{string(s)}, p...)...) }

// Logs is the directory of boot and stand-in logs.
func (s State) Logs() string { return s.path("logs") }

// Instances is where the instances' own files live (their user data, their
// shims, the upper layers of their /etc, /usr/local, /var and /opt): under
// /run/webstack-twin, not beside the clone. An instance overlays the
// machine's /var and /opt and mounts a fresh /tmp, so files of its own under
// any of those (a clone in /tmp or /var/tmp) would be hidden from it, or
// refused as an overlay inside its own lower layer. One directory per
// clone and stack (a digest of the state's path), so twins of two clones
// do not meet.
func (s State) Instances() string {
	abs, err := filepath.Abs(string(s))
	if err != nil {
		abs = string(s)
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(instancesRoot, filepath.Base(abs)+"-"+hex.EncodeToString(sum[:4]))
}

// instancesRoot holds every twin's instances' files (root only, as the twin).
const instancesRoot = "/run/webstack-twin"

// listenIn opens a TCP listener inside namespace ns. The socket lives in
// ns; serving it needs no thread of ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var (
		ln  net.Listener
		err error
	)
	if nerr := inNamespace(ns, func() { ln, err = net.Listen("tcp", addr) }); nerr != nil {
		return nil, nerr
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
	}
	return ln, nil
}

// dialIn connects to addr from inside namespace ns.
func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if nerr := inNamespace(ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr) }); nerr != nil {
		return nil, nerr
	}
	return c, err
}

// ClientIn is an HTTP client whose connections start in namespace ns.
func ClientIn(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialIn(ctx, ns, addr) },
	}}
}

// Serve runs the twin's stand-ins until ctx ends: the AWS endpoints in
// the aws namespace (IMDS, S3, Secrets Manager, the CA bundle URL) and the
// DocumentDB cluster in the database namespace, in front of FerretDB as
// `conduit local` embeds it (conduit is a build of the app for this
// machine). It writes the twin's CA to state/pki/ca.pem, then
// state/serve.ready. SIGUSR1 rotates the database secret; SIGUSR2 fails the
// database over; SIGHUP puts new versions of the JWT secret and the web
// certificates.
func (m *Model) Serve(ctx context.Context, state State, conduit string, log *slog.Logger) error {
	p, err := newPKI()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(state.path("pki"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(state.path("pki", "ca.pem"), p.CAPEM, 0o644); err != nil {
		return err
	}
	aws, err := newStandIns(m, p, log)
	if err != nil {
		return err
	}
	awsNS := m.Namespace("aws")

	hop := func(a netip.Addr) int {
		if h, ok := aws.instanceAt(a); ok {
			return h.Metadata.HopLimit + 1
		}
		return 1
	}
	imdsLn, err := listenIn(awsNS, net.JoinHostPort(imdsAddr.String(), "80"))
	if err != nil {
		return err
	}
	imds := &http.Server{Handler: aws.imds(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = imds.Serve(withTTL{imdsLn, hop}) }()

	w := m.AWS
	cert, err := p.leaf(w.Release.Bucket+".s3."+w.Region+".amazonaws.com", "secretsmanager."+w.Region+".amazonaws.com", "truststore.pki.rds.amazonaws.com")
	if err != nil {
		return err
	}
	httpsLn, err := listenIn(awsNS, net.JoinHostPort(awsAddr.String(), "443"))
	if err != nil {
		return err
	}
	https := &http.Server{Handler: aws.endpoints(), ReadHeaderTimeout: 5 * time.Second}
	servers := []*http.Server{imds, https}
	go func() {
		_ = https.Serve(tls.NewListener(httpsLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}()

	var ferret *exec.Cmd
	var db *cluster
	if host, ok := m.hostOfTier(DB); ok {
		var ferretAddr string
		if ferret, ferretAddr, err = startFerret(ctx, conduit, state, log); err != nil {
			return err
		}
		defer func() { _ = ferret.Process.Signal(syscall.SIGTERM); _ = ferret.Wait() }()
		cert, err := p.leaf(w.DB.Host, w.DB.ReaderHost)
		if err != nil {
			return err
		}
		ln, err := listenIn(host.Namespace, netip.AddrPortFrom(host.Address, uint16(w.DB.Port)).String())
		if err != nil {
			return err
		}
		defer ln.Close()
		db = &cluster{upstream: ferretAddr, aws: aws, cert: cert, log: log}
		go db.serve(ln)
	}

	if err := m.serveBalancers(ctx, state, p, log); err != nil {
		return err
	}

	usr1, usr2, hup := make(chan os.Signal, 1), make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	signal.Notify(usr2, syscall.SIGUSR2)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(usr1)
	defer signal.Stop(usr2)
	defer signal.Stop(hup)
	if err := os.WriteFile(state.path("serve.ready"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	log.Info("stand-ins serving", "imds", imdsAddr, "endpoints", awsAddr, "database", w.DB.Host)
	for {
		select {
		case <-ctx.Done():
			for _, s := range servers {
				_ = s.Close()
			}
			return nil
		case <-usr1:
			go aws.rotateDB(rotationWindow)
		case <-usr2:
			if db != nil {
				db.failover(failoverWindow)
			}
		case <-hup:
			aws.rotateKeys()
		}
	}
}

// hopeless are what a boot log says when the instance cannot boot here
// whatever it retries: a program it needs is not on its PATH, or a file the
// twin put there is not there.
var hopeless = []string{"command not found", "No such file or directory", "Permission denied"}

// hopelessLine is the first line of the log at path saying the boot cannot
// finish ("" when none does).
func hopelessLine(path string) string {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		for _, h := range hopeless {
			if strings.Contains(line, h) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// bootLimit is how long an instance's user data may take in the twin.
const bootLimit = 2 * time.Minute

// failoverWindow is how long the cluster has no primary in the failover
// drill (DocumentDB's own take about 30 s; the drill keeps the twin quick).
const failoverWindow = 5 * time.Second

// rotationWindow is how long a rotation keeps the new password pending
// (between setSecret and finishSecret) in the drill.
const rotationWindow = 10 * time.Second

// startFerret runs FerretDB (as `conduit local` embeds it) on a free
// loopback port of this machine, with its data under state/db.
func startFerret(ctx context.Context, conduit string, state State, log *slog.Logger) (*exec.Cmd, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	out, err := os.Create(state.path("logs", "ferretdb.log"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(conduit, "local", "--mongo-addr", addr, "--web-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", state.path("db"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s local (FerretDB): %w", conduit, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			log.Info("FerretDB up", "addr", addr)
			return cmd, addr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			return nil, "", fmt.Errorf("FerretDB did not listen on %s (see %s)", addr, out.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BootAll boots every instance from its own user data, at once, each in
// its network namespace and a mount namespace of its own, logging to
// state/logs/<name>-boot.log; then waits for each service's health check.
// exe is the twin's program (the shims call it).
func (m *Model) BootAll(state State, exe string, out io.Writer) error {
	ca, err := os.ReadFile(state.path("pki", "ca.pem"))
	if err != nil {
		return fmt.Errorf("the stand-ins are not up: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, h := range m.Hosts {
		if h.Boot == nil {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			err := m.boot(state, exe, h, ca)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
				return
			}
			fmt.Fprintf(out, "boot %-8s user data complete, release sha256 %.12s installed, service healthy in %.1f s (%s)\n", h.Name, m.AWS.Release.SHA256, time.Since(start).Seconds(), state.path("logs", h.Name+"-boot.log"))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *Model) boot(state State, exe string, h Host, ca []byte) error {
	root, err := filepath.Abs(filepath.Join(state.Instances(), h.Name))
	if err != nil {
		return err
	}
	if err := m.prepareInstance(root, exe, h, ca); err != nil {
		return err
	}
	log, err := os.Create(state.path("logs", h.Name+"-boot.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("ip", "netns", "exec", h.Namespace, "unshare", "--mount", "--propagation", "private", exe, "twin", "boot", "--root", root)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The install script retries for half an hour, as it should on EC2;
	// the twin has no propagation delays to wait for. A boot that cannot
	// finish here at all (a tool missing from the instance's PATH) is said
	// within seconds, with the line that says why, not after bootLimit.
	timer := time.AfterFunc(bootLimit, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	done := make(chan struct{})
	var hopeless atomic.Value // string
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if line := hopelessLine(log.Name()); line != "" {
					hopeless.Store(line)
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					return
				}
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if line, _ := hopeless.Load().(string); line != "" {
		timer.Stop()
		return fmt.Errorf("the instance cannot boot in this twin: %q (see %s)", line, log.Name())
	}
	if !timer.Stop() {
		return fmt.Errorf("user data not complete after %s (see %s)", bootLimit, log.Name())
	}
	if err != nil {
		return fmt.Errorf("user data failed: %w (see %s)", err, log.Name())
	}
	// What the instance runs is the release the plan names, byte for byte.
	installed, err := os.ReadFile(filepath.Join(root, "fs", "usr", "local", "upper", "bin", "conduit"))
	if err != nil {
		return fmt.Errorf("no conduit installed: %w (see %s)", err, log.Name())
	}
	if sum := sha256.Sum256(installed); hex.EncodeToString(sum[:]) != m.AWS.Release.SHA256 {
		return fmt.Errorf("installed conduit is not the release %s", m.AWS.Release.SHA256)
	}
	return m.waitHealthy(h, 3*time.Minute)
}

// waitHealthy waits until each port h listens on answers GET /healthz
// with 200, from h's own namespace.
func (m *Model) waitHealthy(h Host, limit time.Duration) error {
	c := ClientIn(h.Namespace)
	// Liveness only: the certificate's identity is the Postman run's to check.
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
	deadline := time.Now().Add(limit)
	for _, port := range h.Listens {
		scheme := "http"
		if port == 443 {
			scheme = "https"
		}
		url := fmt.Sprintf("%s://%s/healthz", scheme, netip.AddrPortFrom(h.Address, uint16(port)))
		for {
			resp, err := c.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("%s", resp.Status)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not healthy after %s: %v", url, limit, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return nil
}
