package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An article's comments come a page at a time: RealWorld's shape, and a
// Link header (rel="next") to the next page while there is one.
func TestCommentsComeAPageAtATimeWithALinkToTheNext(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	st, body := jake.do("POST", "/api/articles", `{"article":{"title":"Long thread","description":"d","body":"b"}}`)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	for i := range 5 {
		st, body := jake.do("POST", "/api/articles/long-thread/comments", fmt.Sprintf(`{"comment":{"body":"comment %d"}}`, i))
		require.Equal(t, http.StatusOK, st, "%v", body)
	}
	next := regexp.MustCompile(`^<(/api/articles/long-thread/comments\?[^>]+)>; rel="next"$`)
	var bodies []string
	path := "/api/articles/long-thread/comments?limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 5)
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
		var out struct {
			Comments []struct {
				Body string `json:"body"`
			} `json:"comments"`
		}
		require.NoError(t, json.Unmarshal(raw, &out))
		for _, c := range out.Comments {
			bodies = append(bodies, c.Body)
		}
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			m := next.FindStringSubmatch(link)
			require.NotNil(t, m, "Link %q", link)
			path = m[1]
			u, err := url.Parse(path)
			require.NoError(t, err)
			assert.Equal(t, "2", u.Query().Get("limit"), "the next page keeps the limit")
			assert.Len(t, out.Comments, 2, "a page with a next one is full")
		}
	}
	assert.Equal(t, []string{"comment 0", "comment 1", "comment 2", "comment 3", "comment 4"}, bodies, "every comment once, oldest first")

	anon := &client{t: t, base: srv.URL}
	st, body = anon.do("GET", "/api/articles/long-thread/comments", "")
	require.Equal(t, http.StatusOK, st)
	assert.Len(t, body["comments"], 5, "without limit: the first 100")
	for _, q := range []string{"limit=0", "limit=101", "after=x", "after=12-0", "after=-1-5"} {
		st, body := anon.do("GET", "/api/articles/long-thread/comments?"+q, "")
		assert.Equal(t, http.StatusUnprocessableEntity, st, "%s: %v", q, body)
	}
}
