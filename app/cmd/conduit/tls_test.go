package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/secrets"
	"webstack/app/secrets/secretstest"
)

// selfSigned is a certificate for 127.0.0.1 and its key, as PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	return selfSignedSerial(t, 1)
}

// selfSignedSerial is selfSigned with a serial number of its own.
func selfSignedSerial(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "dev"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

const tlsARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/web-tls-AbCdEf"

// fakeSecrets points the AWS SDK of this process at a Secrets Manager
// stand-in holding value under tlsARN.
func fakeSecrets(t *testing.T, value string) *secretstest.Server {
	t.Helper()
	fake := secretstest.New()
	fake.Set(tlsARN, secrets.Current, value)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	// Only these: no profile, config or credentials file of this machine's
	// (~/.aws) is read, whatever it holds.
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL, "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none} {
		t.Setenv(k, v)
	}
	return fake
}

// A certificate renewed in the secret is served without a restart: read
// again every SecretsRefresh, and at once on SIGHUP (what the twin's drill
// and an operator's `systemctl reload` send). A secret that no longer
// parses leaves the served certificate in place.
func TestTheWebTierServesARenewedCertificateWithoutARestart(t *testing.T) {
	pemOf := func(serial int64) string {
		cert, key := selfSignedSerial(t, serial)
		v, _ := json.Marshal(map[string]string{"certificate": string(cert), "privateKey": string(key)})
		return string(v)
	}
	fake := fakeSecrets(t, pemOf(1))
	out, logs := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"web", "--web-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--upstream", "http://127.0.0.1:1", "--tls-secret-arn", tlsARN}, nil, out, logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	httpsRE := regexp.MustCompile(`web listening on https://([0-9.:]+)`)
	require.Eventually(t, func() bool { return httpsRE.MatchString(out.String()) }, 20*time.Second, 20*time.Millisecond, out.String())
	addr := httpsRE.FindStringSubmatch(out.String())[1]
	served := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	require.EqualValues(t, 1, served())

	fake.Put(tlsARN, pemOf(2))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	assert.Eventually(t, func() bool { return served() == 2 }, 10*time.Second, 50*time.Millisecond, "the renewed certificate is served")

	fake.Put(tlsARN, `{"certificate": "not a certificate"}`)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	assert.Eventually(t, func() bool {
		return bytes.Contains([]byte(out.String()+logs.String()), []byte("serving the one loaded before"))
	}, 10*time.Second, 50*time.Millisecond)
	assert.EqualValues(t, 2, served(), "a broken secret does not take the site down")
}

// The dev web instance serves HTTPS with the certificate in its secret,
// sets HSTS, and its plain HTTP port only redirects.
func TestTheWebTierServesHTTPSFromItsSecretAndRedirectsPlainHTTP(t *testing.T) {
	cert, key := selfSigned(t)
	v, _ := json.Marshal(map[string]string{"certificate": string(cert), "privateKey": string(key)})
	fakeSecrets(t, string(v))
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"web", "--web-addr", "127.0.0.1:0", "--redirect-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--upstream", "http://127.0.0.1:1", "--tls-secret-arn", tlsARN}, nil, out, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	httpsRE := regexp.MustCompile(`web listening on https://([0-9.:]+)`)
	redirRE := regexp.MustCompile(`redirect listening on http://([0-9.:]+)`)
	require.Eventually(t, func() bool { return httpsRE.MatchString(out.String()) && redirRE.MatchString(out.String()) }, 20*time.Second, 20*time.Millisecond, out.String())
	httpsAddr, redirAddr := httpsRE.FindStringSubmatch(out.String())[1], redirRE.FindStringSubmatch(out.String())[1]

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(cert))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("https://" + httpsAddr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Strict-Transport-Security"), "max-age=")

	resp, err = client.Get("http://" + redirAddr + "/api/tags?x=1")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
	_, port, _ := net.SplitHostPort(httpsAddr)
	assert.Equal(t, "https://127.0.0.1:"+port+"/api/tags?x=1", resp.Header.Get("Location"))
}

func TestAWebCertificateSecretThatIsNotOneStopsTheStart(t *testing.T) {
	fakeSecrets(t, "-----BEGIN CERTIFICATE-----\nnot json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"web", "--web-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--tls-secret-arn", tlsARN}, nil, &out, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"certificate"`)
}
