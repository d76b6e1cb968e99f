package twin

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// An instance boots in its own mount namespace (inside its network
// namespace): the machine's /etc, /usr/local, /var and /opt are overlaid
// with directories of the instance's own under .twin/<stack>/hosts/<name>/fs,
// so what the user data writes lands there and the machine is untouched.
// The instance sees the rest of the machine as its AMI (bash, curl,
// coreutils, setpriv); only `aws`, `systemctl`, and the package manager
// the CloudWatch agent comes from are stand-ins (shims/, first on PATH).
var overlaid = []string{"/etc", "/usr/local", "/var", "/opt"}

// cloudConfig is the part of #cloud-config the twin executes. A document
// with any other key is refused: a module the twin would skip silently is
// a boot the twin would not prove.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Owner       string `yaml:"owner"`
		Permissions string `yaml:"permissions"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
	RunCmd []any `yaml:"runcmd"`
}

func parseCloudConfig(doc string) (cloudConfig, error) {
	var c cloudConfig
	if !strings.HasPrefix(doc, "#cloud-config\n") {
		return c, fmt.Errorf("user data is not a #cloud-config document")
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("user data: %w (the twin executes write_files and runcmd only)", err)
	}
	return c, nil
}

// BootHere runs an instance's user data in this process's namespaces: it
// overlays the instance's directories, writes write_files, runs runcmd in
// order (argv lists exec'd, strings through sh, as cloud-init does), and
// fails at the first command that fails. root is the instance's directory.
func BootHere(root string, out io.Writer) error {
	doc, err := os.ReadFile(filepath.Join(root, "user-data"))
	if err != nil {
		return err
	}
	cc, err := parseCloudConfig(string(doc))
	if err != nil {
		return err
	}
	// Nothing we mount may leak back to the machine's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private (run inside `unshare --mount`): %w", err)
	}
	for _, d := range overlaid {
		base := filepath.Join(root, "fs", strings.TrimPrefix(d, "/"))
		upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		opts := "lowerdir=" + d + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", d, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay %s: %w", d, err)
		}
	}
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777"); err != nil {
		return fmt.Errorf("tmpfs /tmp: %w", err)
	}
	for _, f := range cc.WriteFiles {
		if err := writeFile(f.Path, f.Owner, f.Permissions, f.Content); err != nil {
			return fmt.Errorf("write_files %s: %w", f.Path, err)
		}
		fmt.Fprintf(out, "twin-boot: wrote %s (%s, %s)\n", f.Path, f.Owner, f.Permissions)
	}
	env := []string{"PATH=" + filepath.Join(root, "shims") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "TWIN_ROOT=" + root}
	for i, c := range cc.RunCmd {
		var cmd *exec.Cmd
		switch v := c.(type) {
		case string:
			cmd = exec.Command("/bin/sh", "-c", v)
		case []any:
			var argv []string
			for _, a := range v {
				argv = append(argv, fmt.Sprint(a))
			}
			if len(argv) == 0 {
				continue
			}
			cmd = exec.Command(argv[0], argv[1:]...)
		default:
			return fmt.Errorf("runcmd %d: %T is neither a string nor a list", i, c)
		}
		cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, out, out, "/"
		fmt.Fprintf(out, "twin-boot: runcmd %d: %s\n", i, strings.Join(cmd.Args, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("runcmd %d (%s): %w", i, strings.Join(cmd.Args, " "), err)
		}
	}
	fmt.Fprintln(out, "twin-boot: user data complete")
	return nil
}

func writeFile(path, owner, perms, content string) error {
	mode := os.FileMode(0o644)
	if perms != "" {
		m, err := strconv.ParseUint(perms, 8, 32)
		if err != nil {
			return fmt.Errorf("permissions %q: %w", perms, err)
		}
		mode = os.FileMode(m)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if owner == "" {
		owner = "root:root"
	}
	uname, gname, _ := strings.Cut(owner, ":")
	u, err := user.Lookup(uname)
	if err != nil {
		return fmt.Errorf("owner %s: %w", owner, err)
	}
	gid := u.Gid
	if gname != "" {
		g, err := user.LookupGroup(gname)
		if err != nil {
			return fmt.Errorf("owner %s: %w", owner, err)
		}
		gid = g.Gid
	}
	uid, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(gid)
	return os.Chown(path, uid, g)
}

// prepareInstance lays out an instance's directory before it boots: its
// user data, the shims, and the files its AMI and VPC would give it —
// /etc/hosts with the names the VPC's resolver answers (the AWS
// endpoints, the cluster), and the system CA store with the twin's CA in
// it (standing for the public CAs behind AWS's endpoints).
func (m *Model) prepareInstance(root, exe string, h Host, caPEM []byte) error {
	for _, d := range []string{"shims", "fs/etc/upper/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "user-data"), []byte(h.Boot.Doc), 0o600); err != nil {
		return err
	}
	var hosts bytes.Buffer
	if b, err := os.ReadFile("/etc/hosts"); err == nil {
		hosts.Write(b)
	}
	fmt.Fprintf(&hosts, "\n# the twin's VPC resolver\n")
	w := m.AWS
	for _, name := range []string{w.Release.Bucket + ".s3." + w.Region + ".amazonaws.com", "secretsmanager." + w.Region + ".amazonaws.com", "truststore.pki.rds.amazonaws.com"} {
		fmt.Fprintf(&hosts, "%s %s\n", awsAddr, name)
	}
	if db, ok := m.hostOfTier(DB); ok && w.DB.Host != "" {
		fmt.Fprintf(&hosts, "%s %s %s\n", db.Address, w.DB.Host, w.DB.ReaderHost)
	}
	for _, h := range m.Hosts {
		if h.Tier == InternalALB {
			fmt.Fprintf(&hosts, "%s %s\n", h.Address, h.DNSName)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "fs/etc/upper/hosts"), hosts.Bytes(), 0o644); err != nil {
		return err
	}
	system, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err := os.WriteFile(filepath.Join(root, "fs/etc/upper/ssl/certs/ca-certificates.crt"), append(system, caPEM...), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"aws", "systemctl", "rpm", "dnf"} {
		script := fmt.Sprintf("#!/bin/sh\n# The twin's stand-in for %s (see internal/twin/shim.go).\nexec %q twin shim %s \"$@\"\n", name, exe, name)
		if err := os.WriteFile(filepath.Join(root, "shims", name), []byte(script), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) hostOfTier(tier string) (Host, bool) {
	for _, h := range m.Hosts {
		if h.Tier == tier {
			return h, true
		}
	}
	return Host{}, false
}
