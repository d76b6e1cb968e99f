package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
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

// Tokens issues and verifies the API's HS256 JWTs.
type Tokens struct {
	secret Secret
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens needs a secret of at least 32 bytes.
func NewTokens(secret Secret, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("jwt secret is %d bytes, need at least 32", len(secret))
	}
	if ttl <= 0 {
		ttl = 72 * time.Hour
	}
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}, nil
}

const issuer = "conduit"

// claims are a token's: the registered ones and the user's credential
// version it was issued for.
type claims struct {
	jwt.RegisteredClaims
	Cred int `json:"cred"`
}

// Issue returns a token for the user id at credential version cred.
func (t *Tokens) Issue(userID string, cred int) (string, error) {
	now := t.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuer, Subject: userID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}, Cred: cred})
	s, err := tok.SignedString([]byte(t.secret))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify returns the user id and credential version of a valid token.
func (t *Tokens) Verify(token string) (string, int, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return []byte(t.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(t.now))
	if err != nil || c.Subject == "" {
		return "", 0, conduit.Errorf(conduit.CodeUnauthorized, "token is invalid or expired")
	}
	return c.Subject, c.Cred, nil
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
	id, cred, err := a.tokens.Verify(token)
	if err != nil {
		return nil, "", err
	}
	u, err := a.store.User(r.Context(), id)
	if conduit.CodeOf(err) == conduit.CodeNotFound || err == nil && u.Cred != cred {
		return nil, "", conduit.Errorf(conduit.CodeUnauthorized, "token is invalid or expired")
	}
	return u, token, err
}

type tokenKey struct{}

// presented is the token the request authenticated with ("" for none).
func presented(r *http.Request) string {
	t, _ := r.Context().Value(tokenKey{}).(string)
	return t
}

// dummyHash is compared against when a login names no user, so that the
// response time does not tell which emails are registered.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not-a-real-password"), bcrypt.DefaultCost)

func (a *API) hash(password string) (string, error) {
	cost := a.opts.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

func checkPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
