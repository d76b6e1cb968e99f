package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"webstack/app/conduit"
)

// Secret is key material that never prints.
type Secret []byte

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// Tokens issues and verifies the API's HS256 JWTs. Its keys rotate (see
// Rotate): tokens name the key that signed them (kid), a token of the
// previous key is accepted for a grace period after the rotation, and a
// token of a key this process does not know yet (another instance read
// the new secret first) makes it ask for the keys again once (Refresh).
type Tokens struct {
	mu            sync.RWMutex
	current       Secret
	previous      Secret
	previousUntil time.Time
	ttl           time.Duration
	now           func() time.Time

	// Refresh, when set, is called when a token names a key this process
	// does not know: it reads the keys again (and calls Rotate), at most
	// once per RefreshEvery. It must not block for long.
	Refresh      func()
	RefreshEvery time.Duration
	lastRefresh  atomic.Int64 // Unix nanoseconds
}

// NewTokens needs a secret of at least 32 bytes.
func NewTokens(secret Secret, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("jwt secret is %d bytes, need at least 32", len(secret))
	}
	if ttl <= 0 {
		ttl = 72 * time.Hour
	}
	return &Tokens{current: secret, ttl: ttl, now: time.Now, RefreshEvery: 5 * time.Second}, nil
}

// Rotate makes current the signing key; previous (the key current
// replaced, may be empty) stays valid for tokens until previousUntil.
// Rotating to the keys in use changes nothing.
func (t *Tokens) Rotate(current, previous Secret, previousUntil time.Time) error {
	if len(current) < 32 {
		return fmt.Errorf("jwt secret is %d bytes, need at least 32", len(current))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.current, t.previous, t.previousUntil = current, previous, previousUntil
	return nil
}

// CurrentKeyID is the kid of the signing key.
func (t *Tokens) CurrentKeyID() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return KeyID(t.current)
}

// KeyID names a key in tokens' kid header: the first 8 bytes of its
// SHA-256, which tells keys apart and reveals nothing usable of them.
func KeyID(k Secret) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:8])
}

const issuer = "conduit"

// claims are a token's: the registered ones, the user's credential
// version it was issued for, and its session.
type claims struct {
	jwt.RegisteredClaims
	Cred int    `json:"cred"`
	Sid  string `json:"sid"`
}

// TTL is how long a token lasts: a session's absolute lifetime.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue returns a token for the user id at credential version cred, in
// the session sid.
func (t *Tokens) Issue(userID string, cred int, sid string) (string, error) {
	t.mu.RLock()
	key := t.current
	t.mu.RUnlock()
	now := t.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuer, Subject: userID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}, Cred: cred, Sid: sid})
	tok.Header["kid"] = KeyID(key)
	s, err := tok.SignedString([]byte(key))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// errUnknownKey is a token signed by a key this process does not hold.
var errUnknownKey = errors.New("unknown signing key")

// key is the key a token names: the current one (also for tokens without
// a kid, issued before keys had ids), or the previous one in its grace.
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	kid, _ := tok.Header["kid"].(string)
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch {
	case kid == "" || kid == KeyID(t.current):
		return []byte(t.current), nil
	case len(t.previous) > 0 && kid == KeyID(t.previous):
		if t.now().After(t.previousUntil) {
			return nil, errors.New("signed by a retired key")
		}
		return []byte(t.previous), nil
	}
	return nil, errUnknownKey
}

// Verified is what a valid token says: whose it is, at which credential
// version, in which session.
type Verified struct {
	UserID  string
	Cred    int
	Session string
}

// Verify returns what a valid token says.
func (t *Tokens) Verify(token string) (Verified, error) {
	v, err := t.verify(token)
	if errors.Is(err, errUnknownKey) && t.refresh() {
		v, err = t.verify(token)
	}
	if err != nil {
		return Verified{}, conduit.Errorf(conduit.CodeUnauthorized, "token is invalid or expired")
	}
	return v, nil
}

func (t *Tokens) verify(token string) (Verified, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, t.key,
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(t.now))
	if err != nil {
		return Verified{}, err
	}
	if c.Subject == "" || c.Sid == "" {
		// A token without a session (issued before sessions were kept)
		// cannot be signed out: sign in again.
		return Verified{}, errors.New("no subject or session")
	}
	return Verified{UserID: c.Subject, Cred: c.Cred, Session: c.Sid}, nil
}

// refresh asks for the keys again unless it did within RefreshEvery, and
// reports whether it did.
func (t *Tokens) refresh() bool {
	if t.Refresh == nil {
		return false
	}
	now := t.now().UnixNano()
	last := t.lastRefresh.Load()
	if now-last < int64(t.RefreshEvery) || !t.lastRefresh.CompareAndSwap(last, now) {
		return false
	}
	t.Refresh()
	return true
}

// authenticate reads "Authorization: Token <jwt>" (Bearer is accepted too).
// Without a header it returns nil, or 401 when authentication is required;
// a bad token, or one issued before the user's last password change, is
// always 401.
// It also returns the token presented, which GET /api/user gives back: a
// session ends when its token expires, not when the client asks again.
func (a *API) authenticate(r *http.Request, mode authMode) (*conduit.User, string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if mode == required {
			return nil, "", conduit.Errorf(conduit.CodeUnauthorized, "authentication required")
		}
		return nil, "", nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || (!strings.EqualFold(scheme, "Token") && !strings.EqualFold(scheme, "Bearer")) {
		return nil, "", conduit.Errorf(conduit.CodeUnauthorized, "authorization header must be 'Token <jwt>'")
	}
	token = strings.TrimSpace(token)
	v, err := a.tokens.Verify(token)
	if err != nil {
		return nil, "", err
	}
	if err := a.liveSession(r.Context(), v); err != nil {
		return nil, "", err
	}
	u, err := a.store.User(r.Context(), v.UserID)
	if conduit.CodeOf(err) == conduit.CodeNotFound || err == nil && u.Cred != v.Cred {
		return nil, "", conduit.Errorf(conduit.CodeUnauthorized, "token is invalid or expired")
	}
	return u, token, err
}

// errSessionEnded is a token whose session is over: signed out, idle past
// the timeout, or past its lifetime.
var errSessionEnded = conduit.Errorf(conduit.CodeUnauthorized, "the session has ended: sign in again")

// liveSession checks that the token's session is live (read on the
// primary: a sign-out holds on every instance at once) and marks it used,
// at most once a minute.
func (a *API) liveSession(ctx context.Context, v Verified) error {
	sess, err := a.store.Session(ctx, v.Session)
	switch {
	case conduit.CodeOf(err) == conduit.CodeNotFound:
		return errSessionEnded
	case err != nil:
		return err
	}
	now := a.now()
	if sess.UserID != v.UserID || now.After(sess.Expires) || now.Sub(sess.Seen) > a.opts.SessionIdle {
		return errSessionEnded
	}
	if now.Sub(sess.Seen) >= min(sessionTouchEvery, a.opts.SessionIdle/4) {
		// Best effort: a request is not refused because its session's
		// clock could not move; the next one tries again.
		if err := a.store.TouchSession(ctx, sess.ID, now); err != nil && ctx.Err() == nil {
			a.log.LogAttrs(ctx, slog.LevelDebug, "touch session", slog.Any("error", err))
		}
	}
	return nil
}

// sessionTouchEvery is how often a session's last use is written: the
// idle timeout is exact to within it.
const sessionTouchEvery = time.Minute

// newSessionID is a session's id: 128 random bits.
func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type tokenKey struct{}

// presented is the token the request authenticated with ("" for none).
func presented(r *http.Request) string {
	t, _ := r.Context().Value(tokenKey{}).(string)
	return t
}

// Passwords are pre-hashed before bcrypt, so that every character counts
// (bcrypt reads 72 bytes: 24 characters of Chinese) and a long password
// costs what a short one does: bcrypt(base64(HMAC-SHA256(k, password))),
// with k this app's fixed label (a plain SHA-256 would let a hash leaked
// from another site's unsalted SHA-256 be tried against ours, "shucking").
// Stored as prehashPrefix + the bcrypt hash; a hash without it is from
// before, of the password itself, and still checks.
const prehashPrefix = "$ph1$"

var prehashKey = []byte("conduit/password/v1")

func prehash(password string) []byte {
	mac := hmac.New(sha256.New, prehashKey)
	mac.Write([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// dummyHash is compared against when a login names no user, so that the
// response time does not tell which emails are registered.
var dummyHash = func() string {
	h, _ := bcrypt.GenerateFromPassword(prehash("not-a-real-password"), bcrypt.DefaultCost)
	return prehashPrefix + string(h)
}()

func (a *API) hash(password string) (string, error) {
	cost := a.opts.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword(prehash(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return prehashPrefix + string(h), nil
}

func checkPassword(hash, password string) bool {
	if h, ok := strings.CutPrefix(hash, prehashPrefix); ok {
		return bcrypt.CompareHashAndPassword([]byte(h), prehash(password)) == nil
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
