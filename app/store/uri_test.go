package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestDocumentDBURIIsSafeForDocumentDB(t *testing.T) {
	uri := DocumentDBURI("db.cluster-abc.us-east-1.docdb.amazonaws.com", 27017, "conduit", "p@ss:w/rd?&", writeCA(t))
	opts := options.Client().ApplyURI(uri)
	assert.NoError(t, opts.Validate())
	assert.Equal(t, []string{"db.cluster-abc.us-east-1.docdb.amazonaws.com:27017"}, opts.Hosts)
	assert.Equal(t, "conduit", opts.Auth.Username)
	assert.Equal(t, "p@ss:w/rd?&", opts.Auth.Password, "special characters survive escaping")
	assert.NotNil(t, opts.TLSConfig, "TLS on")
	assert.Equal(t, "rs0", *opts.ReplicaSet)
	assert.False(t, *opts.RetryWrites, "DocumentDB has no retryable writes")
}

// writeCA writes a throwaway self-signed CA bundle.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
