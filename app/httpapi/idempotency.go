package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"webstack/app/conduit"
)

// Keys is what the Idempotency-Key support needs of the store.
type Keys interface {
	ClaimKey(ctx context.Context, id, body, claim string, now time.Time, lease time.Duration) (*conduit.Answer, conduit.RequestKey, error)
	KeepAnswer(ctx context.Context, id, claim string, a conduit.Answer) error
	MadeByKey(ctx context.Context) (bool, error)
}

// IdempotencyHeader names the request header of the IETF httpapi draft
// ("The Idempotency-Key HTTP Header Field"), with Stripe's semantics: a
// POST, PUT or DELETE sent with it is answered once and its answer given
// again to every copy (see the store's ClaimKey).
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader marks an answer given again for a copy of a request.
const ReplayedHeader = "Idempotent-Replayed"

// keptHeaders are the answer's headers kept with it.
var keptHeaders = []string{"Content-Type", "ETag"}

// credentialRoutes answer with a bearer token: their answers are not kept
// (a token at rest in the database is a credential anyone reading it could
// use), so the key is not honoured there; their writes converge as every
// write does (see the store's package comment).
var credentialRoutes = []string{"POST /api/users", "POST /api/users/login", "PUT /api/user"}

// idempotencyKey is the request's key, or "" when it has none or the route
// does not honour one; a malformed key is an error. The draft sends it as
// a structured-field string ("…"); a bare one is taken too, as Stripe's.
func idempotencyKey(r *http.Request) (string, error) {
	raw := r.Header.Get(IdempotencyHeader)
	if raw == "" || (r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodDelete) {
		return "", nil
	}
	for _, route := range credentialRoutes {
		if r.Pattern == route {
			return "", nil
		}
	}
	key := raw
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	if key == "" || len(key) > 255 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e || c == '"' || c == '\\' }) >= 0 {
		return "", conduit.Errorf(conduit.CodeInvalid, "Idempotency-Key must be 1 to 255 visible characters")
	}
	return key, nil
}

// idempotent runs serve for a request sent with key under the key's
// record: the first request with it runs and its answer is kept; a copy
// gets that answer again (with Idempotent-Replayed: true), or 409 while the
// first is still running, or 422 when its body is not the first one's.
func (a *API) idempotent(w http.ResponseWriter, r *http.Request, me *conduit.User, key string, serve func(http.ResponseWriter, *http.Request)) {
	keys, ok := a.store.(Keys)
	if !ok {
		serve(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.writeError(w, r, &conduit.Error{Code: codeTooLarge, Message: "request body too large"})
			return
		}
		a.writeError(w, r, conduit.Errorf(conduit.CodeInvalid, "request body could not be read"))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	scope := "anonymous"
	if me != nil {
		scope = "user " + me.ID
	}
	id := hash(scope, r.Method, r.URL.Path, key)
	claim := rand.Text()
	answer, rk, err := keys.ClaimKey(r.Context(), id, hash(string(body)), claim, a.now(), a.opts.IdempotencyLease)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if answer != nil {
		for k, v := range answer.Header {
			w.Header().Set(k, v)
		}
		w.Header().Set(ReplayedHeader, "true")
		w.WriteHeader(answer.Status)
		_, _ = w.Write(answer.Body)
		return
	}
	rec := &recorder{ResponseWriter: w}
	serve(rec, r.WithContext(conduit.WithRequestKey(r.Context(), rk)))
	// The client has its answer before it is kept (KeepAnswer may take up
	// to its 2 s when the database is failing over).
	if rec.status != 0 {
		_ = http.NewResponseController(w).Flush()
	}
	kept := conduit.Answer{Status: rec.status, Header: map[string]string{}, Body: rec.body.Bytes()}
	if rec.status == 0 || rec.over {
		kept.Status = http.StatusServiceUnavailable // no whole answer: the next copy runs
	}
	for _, h := range keptHeaders {
		if v := rec.Header().Get(h); v != "" {
			kept.Header[h] = v
		}
	}
	if err := keys.KeepAnswer(r.Context(), id, claim, kept); err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "could not keep an idempotent answer (a copy sent after its lease runs again)", slog.Any("error", err))
	}
}

// maxKeptAnswer is the largest answer body kept (the store's limit too):
// an article with the longest body is about 200 KiB of JSON.
const maxKeptAnswer = 1 << 20

// hash is the hex SHA-256 of parts, each ended by a zero byte.
func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// recorder passes an answer through and keeps its status and body (up to
// maxKeptAnswer).
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	over   bool
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > maxKeptAnswer {
		r.over = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
