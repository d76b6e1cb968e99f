package twin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stand-in secret version stages (as Secrets Manager names them).
const (
	stageCurrent  = "AWSCURRENT"
	stagePending  = "AWSPENDING"
	stagePrevious = "AWSPREVIOUS"
)

// standIns are the AWS endpoints of the twin: the instance metadata
// service, S3 (the release object), Secrets Manager (the plan's secrets)
// and the RDS CA bundle URL. Who asks is known from the instance-role
// credentials the metadata service handed out; what they may read is the
// plan's IAM policies for that role.
type standIns struct {
	m   *Model
	pki *pki
	log *slog.Logger

	mu      sync.Mutex
	tokens  map[string]time.Time // IMDSv2 session tokens → expiry
	keys    map[string]roleKey   // access key id → the role's credentials
	secrets map[string]*secret   // ARN → secret
}

type roleKey struct {
	Role, Secret, Token string
}

// secret is a Secrets Manager secret with its version stages.
type secret struct {
	Name    string
	Stages  map[string]string    // stage → value
	Created map[string]time.Time // stage → when that version was made
}

func newSecret(name, value string) *secret {
	return &secret{Name: name, Stages: map[string]string{stageCurrent: value}, Created: map[string]time.Time{stageCurrent: time.Now()}}
}

// put makes value the current version, as PutSecretValue (and a `pulumi
// up` with a new value) does: the current one becomes AWSPREVIOUS.
func (sec *secret) put(value string) {
	sec.Stages[stagePrevious], sec.Created[stagePrevious] = sec.Stages[stageCurrent], sec.Created[stageCurrent]
	sec.Stages[stageCurrent], sec.Created[stageCurrent] = value, time.Now()
}

func newStandIns(m *Model, p *pki, log *slog.Logger) (*standIns, error) {
	s := &standIns{m: m, pki: p, log: log, tokens: map[string]time.Time{}, keys: map[string]roleKey{}, secrets: map[string]*secret{}}
	w := m.AWS
	s.secrets[w.JWTSecretARN] = newSecret("jwt", randomString(48))
	if w.DB.SecretARN != "" {
		cred, _ := json.Marshal(map[string]string{"username": w.DB.Username, "password": randomString(32)})
		s.secrets[w.DB.SecretARN] = newSecret("database", string(cred))
	}
	// A web instance's certificate, as its operator would store it: for
	// the address the internet reaches it at, issued by the twin's CA.
	for _, t := range w.WebTLS {
		v, err := s.webCertificate(t.Host)
		if err != nil {
			return nil, err
		}
		s.secrets[t.SecretARN] = newSecret("web-tls", v)
	}
	return s, nil
}

// webCertificate is a new certificate of host's, as its operator would
// store it: for the addresses the internet and the VPC reach it at,
// issued by the twin's CA, with a serial of its own.
func (s *standIns) webCertificate(host string) (string, error) {
	h, ok := s.m.Host(host)
	if !ok {
		return "", fmt.Errorf("twin: certificate secret of unknown host %s", host)
	}
	ips := []net.IP{h.Address.AsSlice()}
	if h.Public.IsValid() {
		ips = append(ips, h.Public.AsSlice())
	}
	cert, err := s.pki.leafIPs(ips, h.Name+".twin")
	if err != nil {
		return "", err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", err
	}
	v, _ := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})),
		"privateKey":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})),
	})
	return string(v), nil
}

// rotateKeys puts new versions of the JWT secret (as `pulumi config set
// --secret jwtSecret` and an up do) and of every web certificate (as a
// renewal does).
func (s *standIns) rotateKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[s.m.AWS.JWTSecretARN].put(randomString(48))
	for _, t := range s.m.AWS.WebTLS {
		v, err := s.webCertificate(t.Host)
		if err != nil {
			s.log.Error("renew a web certificate", "host", t.Host, "error", err)
			continue
		}
		s.secrets[t.SecretARN].put(v)
	}
	s.log.Info("JWT secret and web certificates: new versions put (the old ones are AWSPREVIOUS)")
}

// dbPasswords are the database passwords the stand-in cluster accepts: the
// current one (and, while a rotation is between setSecret and
// finishSecret, only the pending one, as DocumentDB has changed it).
func (s *standIns) dbPassword() (user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[s.m.AWS.DB.SecretARN]
	if sec == nil {
		return "", ""
	}
	v := sec.Stages[stageCurrent]
	if p, ok := sec.Stages[stagePending]; ok {
		v = p
	}
	var c struct{ Username, Password string }
	_ = json.Unmarshal([]byte(v), &c)
	return c.Username, c.Password
}

// rotateDB rotates the database secret as DocumentDB's managed rotation
// does: a new password is staged AWSPENDING and set in the cluster, then
// promoted to AWSCURRENT after pause. Connections made before keep their
// session, as on DocumentDB; every new one in the window must find the
// pending password itself.
func (s *standIns) rotateDB(pause time.Duration) {
	cred, _ := json.Marshal(map[string]string{"username": s.m.AWS.DB.Username, "password": randomString(32)})
	s.mu.Lock()
	sec := s.secrets[s.m.AWS.DB.SecretARN]
	sec.Stages[stagePending], sec.Created[stagePending] = string(cred), time.Now()
	s.mu.Unlock()
	s.log.Info("database secret: new password set (AWSPENDING)")
	time.Sleep(pause)
	s.mu.Lock()
	sec.Stages[stageCurrent], sec.Created[stageCurrent] = string(cred), sec.Created[stagePending]
	delete(sec.Stages, stagePending)
	delete(sec.Created, stagePending)
	s.mu.Unlock()
	s.log.Info("database secret: rotation finished (AWSCURRENT)")
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// instanceAt is the instance whose private address is a.
func (s *standIns) instanceAt(a netip.Addr) (Host, bool) {
	for _, h := range s.m.Hosts {
		if h.Boot != nil && h.Address == a.Unmap() {
			return h, true
		}
	}
	return Host{}, false
}

// imds is the instance metadata service at 169.254.169.254: IMDSv2
// session tokens (required when the launch template says so), the
// instance's identity and its role's credentials. It knows the caller by
// its source address, as EC2 knows it by its interface.
func (s *standIns) imds() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		h, ok := s.instanceAt(ap.Addr())
		if !ok {
			http.Error(w, "not an instance of this stack", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut {
				http.Error(w, "", http.StatusMethodNotAllowed)
				return
			}
			ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			if err != nil || ttl < 1 || ttl > 21600 {
				http.Error(w, "", http.StatusBadRequest)
				return
			}
			tok := randomString(44)
			s.mu.Lock()
			s.tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
			s.mu.Unlock()
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
			_, _ = io.WriteString(w, tok)
			return
		}
		if r.Method != http.MethodGet {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		tok := r.Header.Get("X-Aws-Ec2-Metadata-Token")
		s.mu.Lock()
		exp, valid := s.tokens[tok]
		s.mu.Unlock()
		switch {
		case tok != "" && (!valid || time.Now().After(exp)):
			http.Error(w, "", http.StatusUnauthorized)
			return
		case tok == "" && h.Metadata.TokensRequired:
			s.log.Warn("IMDSv1 request refused (the launch template requires tokens)", "instance", h.Name, "path", r.URL.Path)
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		const creds = "/latest/meta-data/iam/security-credentials/"
		switch p := r.URL.Path; {
		case p == "/latest/meta-data/placement/region":
			_, _ = io.WriteString(w, s.m.AWS.Region)
		case p == "/latest/meta-data/placement/availability-zone":
			_, _ = io.WriteString(w, h.AZ)
		case p == "/latest/meta-data/instance-id":
			_, _ = io.WriteString(w, instanceID(h))
		case p == "/latest/meta-data/local-ipv4":
			_, _ = io.WriteString(w, h.Address.String())
		case p == "/latest/dynamic/instance-identity/document":
			_ = json.NewEncoder(w).Encode(map[string]any{"region": s.m.AWS.Region, "availabilityZone": h.AZ,
				"instanceId": instanceID(h), "privateIp": h.Address.String(), "architecture": "arm64"})
		case p == creds:
			_, _ = io.WriteString(w, h.Role)
		case p == creds+h.Role:
			k := s.credentials(h.Role)
			_ = json.NewEncoder(w).Encode(map[string]any{"Code": "Success", "Type": "AWS-HMAC",
				"AccessKeyId": k.id, "SecretAccessKey": k.Secret, "Token": k.Token,
				"LastUpdated": time.Now().UTC().Format(time.RFC3339), "Expiration": time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339)})
		default:
			http.NotFound(w, r)
		}
	})
}

func instanceID(h Host) string {
	sum := sha256.Sum256([]byte(h.Namespace))
	return "i-" + hex.EncodeToString(sum[:])[:17]
}

type issuedKey struct {
	id string
	roleKey
}

// credentials are role's temporary credentials (one set per role).
func (s *standIns) credentials(role string) issuedKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, k := range s.keys {
		if k.Role == role {
			return issuedKey{id, k}
		}
	}
	id := "ASIA" + strings.ToUpper(randomString(16))
	k := roleKey{Role: role, Secret: randomString(40), Token: randomString(64)}
	s.keys[id] = k
	return issuedKey{id, k}
}

// caller is the role whose credentials signed r (SigV4 Authorization
// header and session token), or "" when they are none the metadata
// service issued. The signature itself is not recomputed: the twin checks
// who asks and what the plan lets them read, not AWS's cryptography.
func (s *standIns) caller(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	k, ok := s.keys[id]
	s.mu.Unlock()
	if !ok || r.Header.Get("X-Amz-Security-Token") != k.Token {
		return ""
	}
	return k.Role
}

// endpoints serves the HTTPS endpoints by host name.
func (s *standIns) endpoints() http.Handler {
	w := s.m.AWS
	s3Host := w.Release.Bucket + ".s3." + w.Region + ".amazonaws.com"
	smHost := "secretsmanager." + w.Region + ".amazonaws.com"
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		switch host {
		case "truststore.pki.rds.amazonaws.com":
			if r.URL.Path != "/global/global-bundle.pem" {
				http.NotFound(rw, r)
				return
			}
			_, _ = rw.Write(s.pki.CAPEM)
		case s3Host:
			s.getObject(rw, r, strings.TrimPrefix(r.URL.Path, "/"))
		case smHost:
			s.secretsManager(rw, r)
		default:
			http.Error(rw, "the twin has no endpoint "+host, http.StatusNotFound)
		}
	})
}

func (s *standIns) getObject(w http.ResponseWriter, r *http.Request, key string) {
	rel := s.m.AWS.Release
	role := s.caller(r)
	arn := "arn:aws:s3:::" + rel.Bucket + "/" + key
	if role == "" || !s.m.AWS.Allows(role, "s3:GetObject", arn) {
		s.log.Warn("S3 GetObject refused", "role", role, "object", arn)
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	if key != rel.Key {
		s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	f, err := os.Open(rel.Path)
	if err != nil {
		s3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer f.Close()
	s.log.Info("S3 GetObject", "role", role, "object", arn)
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, f)
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

// secretsManager answers GetSecretValue (JSON 1.1 protocol).
func (s *standIns) secretsManager(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		fail(http.StatusBadRequest, "UnknownOperationException", "the twin implements GetSecretValue only")
		return
	}
	var in struct{ SecretId, VersionStage string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		fail(http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if in.VersionStage == "" {
		in.VersionStage = stageCurrent
	}
	role := s.caller(r)
	if role == "" {
		fail(http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	if !s.m.AWS.Allows(role, "secretsmanager:GetSecretValue", in.SecretId) {
		s.log.Warn("GetSecretValue refused", "role", role, "secret", in.SecretId)
		fail(http.StatusBadRequest, "AccessDeniedException", "User: "+role+" is not authorized to perform: secretsmanager:GetSecretValue on resource: "+in.SecretId)
		return
	}
	s.mu.Lock()
	sec, ok := s.secrets[in.SecretId]
	var v string
	var created time.Time
	if ok {
		v, ok = sec.Stages[in.VersionStage]
		created = sec.Created[in.VersionStage]
	}
	s.mu.Unlock()
	if !ok {
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: "+in.VersionStage)
		return
	}
	s.log.Info("GetSecretValue", "role", role, "secret", sec.Name, "stage", in.VersionStage)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"ARN": in.SecretId, "Name": sec.Name, "SecretString": v,
		"VersionId": fmt.Sprintf("%x", sha256.Sum256([]byte(v)))[:32], "VersionStages": []string{in.VersionStage},
		"CreatedDate": float64(created.Unix())})
}

// withTTL sets the IP TTL of every connection ln accepts: the IMDS
// response hop limit. The twin's router is one hop more than EC2's
// (the instance's own interface), so the limit the plan sets plus one
// reaches the instance and no further.
type withTTL struct {
	net.Listener
	ttl func(netip.Addr) int
}

func (l withTTL) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if raw, err := tc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, l.ttl(ap.Addr().Unmap()))
			})
		}
	}
	return c, nil
}
