package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"webstack/app/observe"
)

// The api's JSON shapes, as the RealWorld spec gives them.
type (
	user struct {
		Email    string  `json:"email"`
		Token    string  `json:"token"`
		Username string  `json:"username"`
		Bio      string  `json:"bio"`
		Image    *string `json:"image"`
	}
	profile struct {
		Username  string  `json:"username"`
		Bio       string  `json:"bio"`
		Image     *string `json:"image"`
		Following bool    `json:"following"`
	}
	article struct {
		Slug           string    `json:"slug"`
		Title          string    `json:"title"`
		Description    string    `json:"description"`
		Body           string    `json:"body"`
		TagList        []string  `json:"tagList"`
		CreatedAt      time.Time `json:"createdAt"`
		UpdatedAt      time.Time `json:"updatedAt"`
		Favorited      bool      `json:"favorited"`
		FavoritesCount int       `json:"favoritesCount"`
		Author         profile   `json:"author"`
	}
	comment struct {
		ID        int64     `json:"id"`
		CreatedAt time.Time `json:"createdAt"`
		Body      string    `json:"body"`
		Author    profile   `json:"author"`
	}
)

// apiError is an answer of the api that is not a success: its status and
// the messages of its error body.
type apiError struct {
	Status   int
	Messages []string
	// Current is the thing as it is now, when an edit was refused for being
	// made to another version (409, 412: the api answers with it), and
	// ETag its version.
	Current json.RawMessage
	ETag    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("api %d: %s", e.Status, strings.Join(e.Messages, "; "))
}

// errUnavailable means the api did not answer in time or at all.
var errUnavailable = errors.New("the api is unavailable")

// client calls the api tier over its upstream URL: the web tier never
// talks to the database.
type client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration

	// The tag list anonymous visitors see is kept for tagsTTL: every page
	// with the Popular Tags box would otherwise cost a second api call.
	tagsMu sync.Mutex
	tagsAt time.Time
	tagsV  []string
}

// tagsTTL is how long the site shows a tag list before asking again: the
// api itself lets anonymous reads lag a second.
const tagsTTL = time.Second

func newClient(base *url.URL, transport http.RoundTripper, timeout time.Duration) *client {
	return &client{base: base, http: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, timeout: timeout}
}

// do sends one request as token (or anonymously) and decodes a success
// into out. A non-2xx answer is an *apiError; no answer within the timeout
// is errUnavailable; the caller's own cancellation is returned as is.
func (c *client) do(outer context.Context, method, path string, query url.Values, token string, in, out any) error {
	_, err := c.send(outer, method, path, query, token, nil, in, out)
	return err
}

// send is do with extra request headers, returning the answer's headers.
func (c *client) send(outer context.Context, method, path string, query url.Values, token string, headers http.Header, in, out any) (http.Header, error) {
	ctx, cancel := context.WithTimeout(outer, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	// The visitor's address, for the api's sign-in throttle and logs (the
	// api believes it from the web tier, its trusted proxy).
	if client := observe.Client(ctx); client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if id := observe.RequestID(ctx); id != "" {
		req.Header.Set(observe.RequestIDHeader, id)
	}
	resp, err := c.http.Do(req)
	// A form sent twice (a double click: the browser drops the first
	// request and sends the second) carries one idempotency key: while the
	// first still runs, the api answers 409 with Retry-After; the second
	// waits for the first's answer, which it is then given.
	for tries := 0; err == nil && resp.StatusCode == http.StatusConflict && resp.Header.Get("Retry-After") != "" &&
		req.Header.Get("Idempotency-Key") != "" && req.GetBody != nil && tries < 40; tries++ {
		resp.Body.Close()
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(keyHeldWait):
			again := req.Clone(ctx)
			if again.Body, err = req.GetBody(); err == nil {
				resp, err = c.http.Do(again)
			}
		}
	}
	if err != nil {
		if outer.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, outer.Err()) // the visitor went away
		}
		return nil, fmt.Errorf("%s %s: %w: %v", method, path, errUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode, ETag: resp.Header.Get("ETag")}
		var eb struct {
			Errors  map[string][]string `json:"errors"`
			Article json.RawMessage     `json:"article"`
			User    json.RawMessage     `json:"user"`
		}
		// An edit refused for its version carries the current article or
		// settings (bodies of articles are at most 64 Ki characters: 1 MiB
		// holds one).
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb) == nil {
			e.Current = eb.Article
			if len(e.Current) == 0 {
				e.Current = eb.User
			}
			for field, msgs := range eb.Errors {
				for _, m := range msgs {
					if field != "body" {
						m = field + " " + m
					}
					e.Messages = append(e.Messages, m)
				}
			}
		}
		if resp.StatusCode >= 500 {
			return nil, fmt.Errorf("%s %s: %w (%d)", method, path, errUnavailable, resp.StatusCode)
		}
		return nil, e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return resp.Header, nil
}

// page is a list query: limit and offset of a page of articles.
func page(n, size int) url.Values {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(size))
	q.Set("offset", strconv.Itoa((n-1)*size))
	return q
}

type articleList struct {
	Articles      []article `json:"articles"`
	ArticlesCount int       `json:"articlesCount"`
}

func (c *client) articles(ctx context.Context, token string, q url.Values) (articleList, error) {
	var out articleList
	return out, c.do(ctx, http.MethodGet, "/api/articles", q, token, nil, &out)
}

func (c *client) feed(ctx context.Context, token string, q url.Values) (articleList, error) {
	var out articleList
	return out, c.do(ctx, http.MethodGet, "/api/articles/feed", q, token, nil, &out)
}

// tags is the tag list as the visitor with token sees it: a signed-in
// visitor's is asked for every time (it shows the tags they just used), an
// anonymous visitor's is kept for tagsTTL.
func (c *client) tags(ctx context.Context, token string) ([]string, error) {
	if token == "" {
		c.tagsMu.Lock()
		tags, at := c.tagsV, c.tagsAt
		c.tagsMu.Unlock()
		if time.Since(at) < tagsTTL {
			return tags, nil
		}
	}
	var out struct {
		Tags []string `json:"tags"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/tags", nil, token, nil, &out); err != nil {
		return nil, err
	}
	if token == "" {
		c.tagsMu.Lock()
		c.tagsV, c.tagsAt = out.Tags, time.Now()
		c.tagsMu.Unlock()
	}
	return out.Tags, nil
}

func (c *client) article(ctx context.Context, token, slug string) (article, error) {
	a, _, err := c.articleVersion(ctx, token, slug)
	return a, err
}

// articleVersion is article with its version's entity tag (what an edit of
// it names in If-Match).
func (c *client) articleVersion(ctx context.Context, token, slug string) (article, string, error) {
	var out struct {
		Article article `json:"article"`
	}
	h, err := c.send(ctx, http.MethodGet, "/api/articles/"+url.PathEscape(slug), nil, token, nil, nil, &out)
	return out.Article, h.Get("ETag"), err
}

// comments is a page of an article's comments: the first, or the one
// after the cursor after; next is the cursor of the page after it ("":
// none), read from the api's Link header.
func (c *client) comments(ctx context.Context, token, slug, after string) (list []comment, next string, err error) {
	var out struct {
		Comments []comment `json:"comments"`
	}
	var q url.Values
	if after != "" {
		q = url.Values{"after": {after}}
	}
	h, err := c.send(ctx, http.MethodGet, "/api/articles/"+url.PathEscape(slug)+"/comments", q, token, nil, nil, &out)
	if err != nil {
		return nil, "", err
	}
	return out.Comments, nextAfter(h.Get("Link")), nil
}

// nextAfter is the after parameter of a Link header's rel="next" URL.
func nextAfter(link string) string {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err == nil {
			return u.Query().Get("after")
		}
	}
	return ""
}

func (c *client) profile(ctx context.Context, token, username string) (profile, error) {
	var out struct {
		Profile profile `json:"profile"`
	}
	return out.Profile, c.do(ctx, http.MethodGet, "/api/profiles/"+url.PathEscape(username), nil, token, nil, &out)
}

// currentUser is the signed-in account with its settings' entity tag (what
// a change of them names in If-Match).
func (c *client) currentUser(ctx context.Context, token string) (user, string, error) {
	var out struct {
		User user `json:"user"`
	}
	h, err := c.send(ctx, http.MethodGet, "/api/user", nil, token, nil, nil, &out)
	return out.User, h.Get("ETag"), err
}

// userCall sends {"user": in} to path with h (If-Match, for a change of
// the settings) and returns the user answered.
func (c *client) userCall(ctx context.Context, method, path, token string, h http.Header, in map[string]any) (user, error) {
	var out struct {
		User user `json:"user"`
	}
	_, err := c.send(ctx, method, path, nil, token, h, map[string]any{"user": in}, &out)
	return out.User, err
}

// saveArticle sends {"article": in} with h (If-Match: the version an edit
// was made to; Idempotency-Key).
func (c *client) saveArticle(ctx context.Context, method, path, token string, h http.Header, in map[string]any) (article, error) {
	var out struct {
		Article article `json:"article"`
	}
	_, err := c.send(ctx, method, path, nil, token, h, map[string]any{"article": in}, &out)
	return out.Article, err
}

// keyHeldWait is how long the site waits before it sends again a form
// whose idempotency key the api says its first copy still holds.
var keyHeldWait = 250 * time.Millisecond

// keyed is the Idempotency-Key header of the form r posted (its page view's
// key: see base.FormKey), or none when it carries none that the api would
// take.
func keyed(r *http.Request) http.Header {
	k := r.PostForm.Get("key")
	if k == "" || len(k) > 255 || strings.IndexFunc(k, func(c rune) bool { return c < 0x21 || c > 0x7e || c == '"' || c == '\\' }) >= 0 {
		return http.Header{}
	}
	return http.Header{"Idempotency-Key": {k}}
}
