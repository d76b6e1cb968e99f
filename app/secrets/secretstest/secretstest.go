// Package secretstest is a stand-in for AWS Secrets Manager that speaks its
// JSON protocol over HTTP (GetSecretValue with version stages), so the real
// SDK client is exercised; tests rotate secrets through it.
package secretstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"webstack/app/secrets"
)

// Server holds secrets by ARN and version stage.
type Server struct {
	mu      sync.Mutex
	values  map[string]map[string]string    // arn → stage → value
	created map[string]map[string]time.Time // arn → stage → when that version was made
	// Allow, when set, decides whether a request (its Authorization
	// header, which names the caller's access key) may read arn.
	Allow func(authorization, arn string) bool
	calls int
}

// New returns an empty Server.
func New() *Server {
	return &Server{values: map[string]map[string]string{}, created: map[string]map[string]time.Time{}}
}

// Set stores value at a version stage (AWSCURRENT, AWSPENDING).
func (s *Server) Set(arn, stage, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values[arn] == nil {
		s.values[arn], s.created[arn] = map[string]string{}, map[string]time.Time{}
	}
	s.values[arn][stage] = value
	s.created[arn][stage] = time.Now()
}

// Put stores a new current value, as PutSecretValue does: the current one
// becomes AWSPREVIOUS.
func (s *Server) Put(arn, value string) {
	s.mu.Lock()
	if cur, ok := s.values[arn]["AWSCURRENT"]; ok {
		s.values[arn]["AWSPREVIOUS"] = cur
		s.created[arn]["AWSPREVIOUS"] = s.created[arn]["AWSCURRENT"]
	}
	s.mu.Unlock()
	s.Set(arn, "AWSCURRENT", value)
}

// Promote makes the AWSPENDING value current, as a rotation's last step.
func (s *Server) Promote(arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[arn]["AWSPENDING"]; ok {
		s.values[arn]["AWSCURRENT"] = v
		delete(s.values[arn], "AWSPENDING")
	}
}

// Calls is how many reads were answered.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// ServeHTTP answers secretsmanager.GetSecretValue.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		fail(w, http.StatusBadRequest, "InvalidRequestException", "only GetSecretValue is served")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fail(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	var in struct {
		SecretId     string
		VersionStage string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "InvalidRequestException", "body is not JSON")
		return
	}
	if in.VersionStage == "" {
		in.VersionStage = "AWSCURRENT"
	}
	if s.Allow != nil && !s.Allow(r.Header.Get("Authorization"), in.SecretId) {
		fail(w, http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf("not authorized to perform secretsmanager:GetSecretValue on %s", in.SecretId))
		return
	}
	s.mu.Lock()
	v, ok := s.values[in.SecretId][in.VersionStage]
	created := s.created[in.SecretId][in.VersionStage]
	s.calls++
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: "+in.VersionStage)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ARN": in.SecretId, "Name": "n", "SecretString": v, "VersionId": "v-" + in.VersionStage,
		"VersionStages": []string{in.VersionStage}, "CreatedDate": float64(created.UnixMilli()) / 1000})
}

// Start serves a new Server on loopback for the test's lifetime and
// returns it with the real client pointed at it.
func Start(t testing.TB) (*Server, *secrets.Client) {
	t.Helper()
	s := New()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	api := secretsmanager.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
	})
	return s, secrets.NewClient(api)
}
