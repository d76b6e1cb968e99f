package twin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Shim runs one of the instance's stand-in programs (see prepareInstance):
// aws (s3api get-object, signed with the instance role's credentials
// from IMDSv2), systemctl (daemon-reload, enable --now, start, stop,
// is-active: the unit file run as systemd would — its environment file,
// a dynamic user, its ambient capabilities, its restart policy), rpm and
// dnf (the AMI's package manager against a repository holding only the
// CloudWatch agent), and the agent's control program.
func Shim(name string, args []string, stdout, stderr io.Writer) int {
	var err error
	code := 1
	switch name {
	case "aws":
		err = awsCLI(args, stdout)
		code = 254 // the aws CLI's exit status for a failed call
	case "systemctl":
		err = systemctl(args, stdout)
	case "service-run":
		err = serviceRun(args)
	case "rpm":
		if len(args) == 2 && args[0] == "-q" {
			if _, e := os.Stat(filepath.Join(rpmDB, args[1])); e == nil {
				fmt.Fprintln(stdout, args[1])
				return 0
			}
			fmt.Fprintf(stdout, "package %s is not installed\n", args[1])
			return 1
		}
		err = fmt.Errorf("the twin's rpm answers -q <package> only")
	case "dnf":
		err = dnf(args)
	case "amazon-cloudwatch-agent-ctl":
		err = agentCtl(args, stdout)
	default:
		err = fmt.Errorf("no shim %q", name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return code
	}
	return 0
}

const (
	rpmDB        = "/var/lib/twin-rpm"
	unitDir      = "/etc/systemd/system"
	stateDir     = "/var/lib/twin-systemd"
	journal      = "/var/log/journal"
	agentCtlPath = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
)

// --- aws ---

func awsCLI(args []string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "s3api" || args[1] != "get-object" {
		return fmt.Errorf("the twin's aws CLI implements `s3api get-object` only, not %q", strings.Join(args, " "))
	}
	fs := flag.NewFlagSet("get-object", flag.ContinueOnError)
	region := fs.String("region", "", "")
	bucket := fs.String("bucket", "", "")
	key := fs.String("key", "", "")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if fs.NArg() != 1 || *bucket == "" || *key == "" {
		return fmt.Errorf("usage: aws s3api get-object --region R --bucket B --key K OUTFILE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds, imdsRegion, err := roleCredentials(ctx)
	if err != nil {
		return err
	}
	if *region == "" {
		*region = imdsRegion
	}
	url := fmt.Sprintf("https://%s.s3.%s.amazonaws.com/%s", *bucket, *region, *key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(empty[:]))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(empty[:]), "s3", *region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		//lint:ignore ST1005 the words of the tool this shim stands in for
		return fmt.Errorf("Could not connect to the endpoint URL: %q: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Code, Message string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		code := resp.Status
		if i := strings.Index(string(b), "<Code>"); i >= 0 {
			rest := string(b)[i+6:]
			code, _, _ = strings.Cut(rest, "<")
		}
		_ = e
		//lint:ignore ST1005 the words of the tool this shim stands in for
		return fmt.Errorf("An error occurred (%s) when calling the GetObject operation", code)
	}
	f, err := os.Create(fs.Arg(0))
	if err != nil {
		return err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"ContentLength": n, "ContentType": resp.Header.Get("Content-Type")})
}

// roleCredentials reads the instance role's credentials from IMDSv2.
func roleCredentials(ctx context.Context) (aws.Credentials, string, error) {
	const imds = "http://169.254.169.254"
	call := func(method, path string, hdr map[string]string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, method, imds+path, nil)
		if err != nil {
			return "", err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("instance metadata: %w", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("instance metadata %s: %s", path, resp.Status)
		}
		return string(b), nil
	}
	tok, err := call(http.MethodPut, "/latest/api/token", map[string]string{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": "300"})
	if err != nil {
		return aws.Credentials{}, "", err
	}
	h := map[string]string{"X-Aws-Ec2-Metadata-Token": tok}
	region, err := call(http.MethodGet, "/latest/meta-data/placement/region", h)
	if err != nil {
		return aws.Credentials{}, "", err
	}
	role, err := call(http.MethodGet, "/latest/meta-data/iam/security-credentials/", h)
	if err != nil {
		return aws.Credentials{}, "", err
	}
	body, err := call(http.MethodGet, "/latest/meta-data/iam/security-credentials/"+strings.TrimSpace(role), h)
	if err != nil {
		return aws.Credentials{}, "", err
	}
	var c struct{ AccessKeyId, SecretAccessKey, Token string }
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		return aws.Credentials{}, "", err
	}
	return aws.Credentials{AccessKeyID: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token}, region, nil
}

// --- systemctl ---

// unit is the part of a systemd service unit the twin runs.
type unit struct {
	ExecStart        []string
	EnvironmentFiles []string
	DynamicUser      bool
	AmbientCaps      []uintptr
	RestartOnFailure bool
	RestartDelay     time.Duration
	LogsDirectory    string
	LogsMode         os.FileMode
}

// capabilities the units may name (linux/capability.h).
var capNumbers = map[string]uintptr{"CAP_NET_BIND_SERVICE": 10}

func loadUnit(name string) (unit, error) {
	f, err := os.Open(filepath.Join(unitDir, name))
	if err != nil {
		//lint:ignore ST1005 the words of the tool this shim stands in for
		return unit{}, fmt.Errorf("Unit %s not found.", name)
	}
	defer f.Close()
	u := unit{RestartDelay: 100 * time.Millisecond, LogsMode: 0o755}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "ExecStart":
			u.ExecStart = strings.Fields(v)
		case "EnvironmentFile":
			u.EnvironmentFiles = append(u.EnvironmentFiles, v)
		case "DynamicUser":
			u.DynamicUser = v == "yes" || v == "true"
		case "AmbientCapabilities":
			for _, c := range strings.Fields(v) {
				n, ok := capNumbers[c]
				if !ok {
					return u, fmt.Errorf("%s: the twin does not know capability %s", name, c)
				}
				u.AmbientCaps = append(u.AmbientCaps, n)
			}
		case "Restart":
			u.RestartOnFailure = v == "on-failure" || v == "always"
		case "RestartSec":
			if d, err := time.ParseDuration(v); err == nil {
				u.RestartDelay = d
			}
		case "LogsDirectory":
			u.LogsDirectory = v
		case "LogsDirectoryMode":
			if m, err := strconv.ParseUint(v, 8, 32); err == nil {
				u.LogsMode = os.FileMode(m)
			}
		}
	}
	if len(u.ExecStart) == 0 {
		return u, fmt.Errorf("%s has no ExecStart", name)
	}
	return u, sc.Err()
}

func systemctl(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("no verb")
	}
	verb, rest := args[0], args[1:]
	now := false
	var units []string
	for _, a := range rest {
		if a == "--now" {
			now = true
		} else {
			units = append(units, a)
		}
	}
	switch verb {
	case "daemon-reload":
		return nil
	case "enable":
		for _, u := range units {
			if _, err := loadUnit(u); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(stateDir, "enabled"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(stateDir, "enabled", u), nil, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Created symlink /etc/systemd/system/multi-user.target.wants/%s → /etc/systemd/system/%s.\n", u, u)
			if now {
				if err := startUnit(u); err != nil {
					return err
				}
			}
		}
		return nil
	case "start", "restart":
		for _, u := range units {
			if verb == "restart" {
				_ = stopUnit(u)
			}
			if err := startUnit(u); err != nil {
				return err
			}
		}
		return nil
	case "stop":
		for _, u := range units {
			if err := stopUnit(u); err != nil {
				return err
			}
		}
		return nil
	case "is-active":
		for _, u := range units {
			if _, ok := runningPID(u); !ok {
				fmt.Fprintln(stdout, "inactive")
				return fmt.Errorf("%s is inactive", u)
			}
			fmt.Fprintln(stdout, "active")
		}
		return nil
	}
	return fmt.Errorf("the twin's systemctl does not implement %q", verb)
}

func pidFile(u string) string { return filepath.Join(stateDir, u+".pid") }

func runningPID(u string) (int, bool) {
	b, err := os.ReadFile(pidFile(u))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

// startUnit starts the unit's supervisor, detached: it outlives the boot,
// as a service outlives systemctl.
func startUnit(u string) error {
	if _, ok := runningPID(u); ok {
		return nil
	}
	un, err := loadUnit(u)
	if err != nil {
		return err
	}
	uid := 0
	if un.DynamicUser {
		uid = dynamicUID
	}
	if err := logsDirectory(un, uid); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(journal, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(journal, u+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(exe, "twin", "shim", "service-run", u)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(pidFile(u), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

func stopUnit(u string) error {
	pid, ok := runningPID(u)
	if !ok {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 300 {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return os.Remove(pidFile(u))
}

// logsDirectory makes the unit's LogsDirectory, owned by its user, before
// the service starts (systemd does so before exec).
func logsDirectory(u unit, uid int) error {
	if u.LogsDirectory == "" {
		return nil
	}
	d := filepath.Join("/var/log", u.LogsDirectory)
	if err := os.MkdirAll(d, u.LogsMode); err != nil {
		return err
	}
	if err := os.Chown(d, uid, uid); err != nil {
		return err
	}
	return os.Chmod(d, u.LogsMode)
}

// dynamicUID is the user a DynamicUser=yes service runs as.
const dynamicUID = 61234

// serviceRun is the supervisor of one unit: it runs ExecStart with the
// unit's environment files, user and capabilities, restarts it on
// failure after RestartSec, and passes SIGTERM on (systemctl stop).
func serviceRun(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: service-run <unit>")
	}
	u, err := loadUnit(args[0])
	if err != nil {
		return err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	for _, ef := range u.EnvironmentFiles {
		optional := strings.HasPrefix(ef, "-")
		vars, err := readEnvFile(strings.TrimPrefix(ef, "-"))
		if err != nil && !optional {
			return err
		}
		env = append(env, vars...)
	}
	uid := 0
	if u.DynamicUser {
		uid = dynamicUID
	}
	if err := logsDirectory(u, uid); err != nil {
		return err
	}
	argv, err := withEmulator(u.ExecStart)
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	for {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, os.Stdout, os.Stderr, "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: u.AmbientCaps}
		if uid != 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), NoSetGroups: true}
		}
		fmt.Printf("systemd: starting %s: %s\n", args[0], strings.Join(u.ExecStart, " "))
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-term:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			fmt.Printf("systemd: stopped %s\n", args[0])
			return nil
		case err := <-done:
			if err == nil || !u.RestartOnFailure {
				fmt.Printf("systemd: %s exited: %v\n", args[0], err)
				return err
			}
			fmt.Printf("systemd: %s failed (%v); restarting in %s\n", args[0], err, u.RestartDelay)
			select {
			case <-term:
				return nil
			case <-time.After(u.RestartDelay):
			}
		}
	}
}

// readEnvFile parses a systemd EnvironmentFile: KEY=VALUE lines, # and ;
// comments, optional quotes.
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", path, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out = append(out, strings.TrimSpace(k)+"="+v)
	}
	return out, nil
}

// withEmulator prefixes qemu-user when the program is built for another
// architecture than this machine's (the release is arm64, for Graviton).
func withEmulator(argv []string) ([]string, error) {
	f, err := elf.Open(argv[0])
	if err != nil {
		return argv, nil // a script, or not there: let exec say
	}
	defer f.Close()
	host := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if f.Machine == host || f.Machine != elf.EM_AARCH64 {
		return argv, nil
	}
	for _, q := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(q); err == nil {
			return append([]string{p}, argv...), nil
		}
	}
	return nil, fmt.Errorf("%s is arm64 and this machine is not: install qemu-user", argv[0])
}

// --- the package manager and the agent ---

func dnf(args []string) error {
	if len(args) == 0 || args[0] != "install" {
		return fmt.Errorf("the twin's dnf implements install only")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for _, p := range args[1:] {
		if strings.HasPrefix(p, "-") {
			continue
		}
		if p != "amazon-cloudwatch-agent" {
			//lint:ignore ST1005 the words of the tool this shim stands in for
			return fmt.Errorf("No match for argument: %s", p)
		}
		if err := os.MkdirAll(filepath.Dir(agentCtlPath), 0o755); err != nil {
			return err
		}
		script := fmt.Sprintf("#!/bin/sh\nexec %q twin shim amazon-cloudwatch-agent-ctl \"$@\"\n", exe)
		if err := os.WriteFile(agentCtlPath, []byte(script), 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(rpmDB, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(rpmDB, p), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// agentCtl checks the configuration the agent is given (fetch-config): it
// parses, and every file and scrape configuration it names exists.
func agentCtl(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("amazon-cloudwatch-agent-ctl", flag.ContinueOnError)
	action := fs.String("a", "", "")
	_ = fs.String("m", "ec2", "")
	start := fs.Bool("s", false, "")
	cfg := fs.String("c", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *action != "fetch-config" || !strings.HasPrefix(*cfg, "file:") {
		return fmt.Errorf("the twin's agent implements -a fetch-config -c file:<path> only")
	}
	b, err := os.ReadFile(strings.TrimPrefix(*cfg, "file:"))
	if err != nil {
		return err
	}
	var c struct {
		Logs struct {
			LogsCollected struct {
				Files struct {
					CollectList []struct {
						FilePath     string `json:"file_path"`
						LogGroupName string `json:"log_group_name"`
					} `json:"collect_list"`
				} `json:"files"`
			} `json:"logs_collected"`
			MetricsCollected struct {
				Prometheus struct {
					ConfigPath string `json:"prometheus_config_path"`
				} `json:"prometheus"`
			} `json:"metrics_collected"`
		} `json:"logs"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("agent configuration: %w", err)
	}
	if p := c.Logs.MetricsCollected.Prometheus.ConfigPath; p != "" {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("agent configuration: prometheus_config_path: %w", err)
		}
	}
	for _, f := range c.Logs.LogsCollected.Files.CollectList {
		if _, err := os.Stat(filepath.Dir(f.FilePath)); err != nil {
			return fmt.Errorf("agent configuration: %s: %w", f.FilePath, err)
		}
		fmt.Fprintf(stdout, "agent: would ship %s to %s\n", f.FilePath, f.LogGroupName)
	}
	if *start {
		fmt.Fprintln(stdout, "agent: configuration valid; the twin has no CloudWatch to ship to")
	}
	return nil
}
