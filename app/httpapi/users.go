package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"webstack/app/conduit"
	"webstack/app/observe"
)

// signedIn starts a session for u and answers with u and a token in it.
// Converges: the session is one insert under a new id; a session whose
// token never reached the client is never used, and the sweep removes it
// when its lifetime ends.
func (a *API) signedIn(w http.ResponseWriter, r *http.Request, st int, u *conduit.User) error {
	now := a.now()
	sess := &conduit.Session{ID: newSessionID(), UserID: u.ID, Seen: now, Expires: now.Add(a.tokens.TTL())}
	if err := a.store.StartSession(r.Context(), sess); err != nil {
		return err
	}
	token, err := a.tokens.Issue(u.ID, u.Cred, sess.ID)
	if err != nil {
		return err
	}
	return a.userResponse(w, st, u, token)
}

// signOut ends the session the request's token is in (an extension of
// the RealWorld spec: POST /api/users/logout). The token is refused from
// then on, on every instance. Ending an ended session is a success.
func (a *API) signOut(w http.ResponseWriter, r *http.Request, _ *conduit.User) error {
	v, err := a.tokens.Verify(presented(r))
	if err != nil {
		return err
	}
	if err := a.store.EndSession(r.Context(), v.Session); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// userResponse answers with u and token.
func (a *API) userResponse(w http.ResponseWriter, st int, u *conduit.User, token string) error {
	writeJSON(w, st, map[string]userJSON{"user": {Email: u.Email, Token: token, Username: u.Username, Bio: u.Bio, Image: image(u.Image)}})
	return nil
}

func (a *API) register(w http.ResponseWriter, r *http.Request, _ *conduit.User) error {
	var req struct {
		User *struct {
			Username string `json:"username"`
			Email    string `json:"email"`
			Password string `json:"password"`
		} `json:"user"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.User == nil {
		return conduit.Errorf(conduit.CodeInvalid, "user can't be empty")
	}
	in := req.User
	for _, err := range []error{conduit.ValidUsername(in.Username), conduit.ValidEmail(in.Email), conduit.ValidPassword(in.Password, in.Username, in.Email)} {
		if err != nil {
			return err
		}
	}
	if err := a.take(r.Context(), a.opts.Quotas.Registrations, "sign-ups from this address", "register/"+observe.Client(r.Context())); err != nil {
		return err
	}
	hash, err := a.hash(in.Password)
	if err != nil {
		return err
	}
	u := &conduit.User{Username: in.Username, Email: in.Email, PasswordHash: hash}
	if err := a.store.CreateUser(r.Context(), u); err != nil {
		if conduit.CodeOf(err) == conduit.CodeConflict {
			if mine, err := a.signUpSentAgain(r, in.Username, in.Email, in.Password); mine != nil || err != nil {
				if err != nil {
					return err
				}
				return a.signedIn(w, r, http.StatusCreated, mine)
			}
		}
		return takenIfConflict(err)
	}
	return a.signedIn(w, r, http.StatusCreated, u)
}

// signUpSentAgain tells a sign-up sent again (its reply lost, or the form
// posted twice) from one for an account someone else holds: the account
// with that email has that username and that password. It is the same
// password check as a sign-in, under the same throttle (so it is no
// cheaper a guess than signing in), and it answers as the first copy did:
// signed in to the account it made. Otherwise (nil, nil): "taken".
func (a *API) signUpSentAgain(r *http.Request, username, email, password string) (*conduit.User, error) {
	wait, done := a.throttle.attempt(email, observe.Client(r.Context()))
	if wait > 0 {
		return nil, &throttledError{after: wait}
	}
	u, err := a.store.UserByEmail(r.Context(), email)
	switch {
	case conduit.CodeOf(err) == conduit.CodeNotFound:
		checkPassword(dummyHash, password) // the same time as a check
		done(spent)                        // the username was taken, not the email: not a guess
		return nil, nil
	case err != nil:
		done(void)
		return nil, err
	}
	// One password check whatever the username (a check only when it is
	// the email's would tell, by its time, which username holds an email).
	hash := u.PasswordHash
	if u.Username != username {
		hash = dummyHash
	}
	if checkPassword(hash, password) && u.Username == username {
		done(passed)
		return u, nil
	}
	done(failed)
	a.signInFailed(r, "register", email)
	return nil, nil
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ *conduit.User) error {
	var req struct {
		User *struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		} `json:"user"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.User == nil || req.User.Email == "" || req.User.Password == "" {
		return conduit.Errorf(conduit.CodeInvalid, "email and password can't be empty")
	}
	email := req.User.Email
	wait, done := a.throttle.attempt(email, observe.Client(r.Context()))
	if wait > 0 {
		return &throttledError{after: wait}
	}
	u, err := a.store.UserByEmail(r.Context(), email)
	switch {
	case conduit.CodeOf(err) == conduit.CodeNotFound:
		checkPassword(dummyHash, req.User.Password)
	case err != nil:
		done(void) // not a guess: the database did not answer (or the client went away)
		return err
	case checkPassword(u.PasswordHash, req.User.Password):
		done(passed)
		return a.signedIn(w, r, http.StatusOK, u)
	}
	done(failed)
	a.signInFailed(r, "login", email)
	return conduit.Errorf(conduit.CodeUnauthorized, "email or password is invalid")
}

// currentUser gives back the token presented: asking again must not
// extend a session.
// Its ETag is the account's version: what PUT /api/user names in If-Match.
func (a *API) currentUser(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	w.Header().Set("ETag", etag(me.Version))
	return a.userResponse(w, http.StatusOK, me, presented(r))
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	var req struct {
		User *struct {
			Email    *string `json:"email"`
			Username *string `json:"username"`
			Password *string `json:"password"`
			Image    *string `json:"image"`
			Bio      *string `json:"bio"`
			// CurrentPassword is required to change the password, or the
			// email to another address: a stolen token alone must not
			// take the account over.
			CurrentPassword *string `json:"currentPassword"`
		} `json:"user"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.User == nil {
		return conduit.Errorf(conduit.CodeInvalid, "user can't be empty")
	}
	if !ifMatch(r, etag(me.Version)) {
		// Made to another version of the settings (another tab saved
		// since): nothing is saved; the answer is the current settings.
		w.Header().Set("ETag", etag(me.Version))
		return a.userResponse(w, http.StatusPreconditionFailed, me, presented(r))
	}
	in, u := req.User, *me
	// The email is "the same" only as the store keys it (lower-cased):
	// strings.EqualFold also folds "ſ" to "s", so "ſam@x.com" would pass as
	// sam@x.com's own and be stored as another address without the
	// current password.
	if in.Password != nil || in.Email != nil && emailKey(*in.Email) != emailKey(me.Email) {
		if in.CurrentPassword == nil {
			return conduit.Errorf(conduit.CodeForbidden, "currentPassword is required and must be right to change the password or the email")
		}
		// The current password is guessed like a sign-in (a stolen token
		// must not be a free guessing oracle): the same throttle, counted
		// under the account's id, which an email change does not move (by
		// its email, a loop of email changes would start each count anew).
		wait, done := a.throttle.attempt("id:"+me.ID, observe.Client(r.Context()))
		if wait > 0 {
			return &throttledError{after: wait}
		}
		ok := checkPassword(me.PasswordHash, *in.CurrentPassword)
		done(map[bool]outcome{true: passed, false: failed}[ok])
		if !ok {
			a.signInFailed(r, "update-user", me.Email)
			return conduit.Errorf(conduit.CodeForbidden, "currentPassword is required and must be right to change the password or the email")
		}
	}
	if in.Email != nil {
		if err := conduit.ValidEmail(*in.Email); err != nil {
			return err
		}
		u.Email = *in.Email
	}
	if in.Username != nil {
		if err := conduit.ValidUsername(*in.Username); err != nil {
			return err
		}
		u.Username = *in.Username
	}
	if in.Password != nil {
		if err := conduit.ValidPassword(*in.Password, u.Username, u.Email, me.Username, me.Email); err != nil {
			return err
		}
		hash, err := a.hash(*in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
		u.Cred++ // every token issued before is void
	}
	if in.Bio != nil {
		if err := conduit.MaxLen("bio", *in.Bio, conduit.MaxBio); err != nil {
			return err
		}
		if err := conduit.ValidText("bio", *in.Bio, true); err != nil {
			return err
		}
		u.Bio = *in.Bio
	}
	if in.Image != nil {
		if err := conduit.ValidImage(*in.Image); err != nil {
			return err
		}
		u.Image = *in.Image
	}
	if err := a.store.UpdateUser(r.Context(), me, &u); err != nil {
		if conduit.CodeOf(err) != conduit.CodeChanged {
			return takenIfConflict(err)
		}
		// Another change was saved between this request's read and its
		// write: 412 when it named the version (RFC 9110 §13.1.1), else
		// 409; either way with the current settings, nothing saved.
		cur, err := a.store.User(r.Context(), me.ID)
		if err != nil {
			return err
		}
		st := http.StatusConflict
		if len(r.Header.Values("If-Match")) > 0 {
			st = http.StatusPreconditionFailed
		}
		w.Header().Set("ETag", etag(cur.Version))
		return a.userResponse(w, st, cur, presented(r))
	}
	w.Header().Set("ETag", etag(u.Version))
	token := presented(r)
	if u.Cred != me.Cred {
		// Every token issued before is void (other sessions end: "sign
		// out everywhere"); this session goes on with a new one.
		v, err := a.tokens.Verify(token)
		if err != nil {
			return err
		}
		if token, err = a.tokens.Issue(u.ID, u.Cred, v.Session); err != nil {
			return err
		}
	}
	return a.userResponse(w, http.StatusOK, &u, token)
}

func (a *API) profileUser(r *http.Request, me *conduit.User) (*conduit.User, error) {
	name := r.PathValue("username")
	if err := conduit.ValidUsername(name); err != nil {
		return nil, conduit.Errorf(conduit.CodeNotFound, "profile not found")
	}
	u, err := a.store.UserByUsername(r.Context(), me, name)
	if conduit.CodeOf(err) == conduit.CodeNotFound {
		return nil, conduit.Errorf(conduit.CodeNotFound, "profile not found")
	}
	return u, err
}

func (a *API) profile(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	u, err := a.profileUser(r, me)
	if err != nil {
		return err
	}
	p, err := a.store.Profile(r.Context(), me, u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]profileJSON{"profile": toProfile(p)})
	return nil
}

func (a *API) follow(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	return a.setFollow(w, r, me, a.store.Follow)
}

func (a *API) unfollow(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	return a.setFollow(w, r, me, a.store.Unfollow)
}

func (a *API) setFollow(w http.ResponseWriter, r *http.Request, me *conduit.User, op func(ctx context.Context, follower, followee string) error) error {
	u, err := a.profileUser(r, me)
	if err != nil {
		return err
	}
	if u.ID == me.ID {
		return conduit.Errorf(conduit.CodeInvalid, "you cannot follow yourself")
	}
	if err := op(r.Context(), me.ID, u.ID); err != nil {
		return err
	}
	p := u.Profile()
	p.Following = r.Method == http.MethodPost
	writeJSON(w, http.StatusOK, map[string]profileJSON{"profile": toProfile(p)})
	return nil
}

// takenIfConflict names what a unique-index conflict on a user means: the
// store says which of the values the person chose is taken.
// emailKey is an email as the store keys it (lower-cased, as
// store.CreateUser stores it): two emails are one when their keys are.
func emailKey(email string) string { return strings.ToLower(email) }

func takenIfConflict(err error) error {
	var e *conduit.Error
	if errors.As(err, &e) && e.Code == conduit.CodeConflict && e.Message == "already exists" {
		return conduit.Errorf(conduit.CodeConflict, "email or username has already been taken")
	}
	return err
}
