package site

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// BenchmarkRenderHome is the CPU a home page of 20 articles costs to
// render (go test -bench RenderHome ./app/site).
func BenchmarkRenderHome(b *testing.B) {
	u, _ := url.Parse("http://127.0.0.1:1")
	s, err := New(Options{Upstream: u})
	if err != nil {
		b.Fatal(err)
	}
	var l articleList
	for i := range 20 {
		a := article{Slug: fmt.Sprintf("benchmark-article-%d", i), Title: fmt.Sprintf("Benchmark article %d", i), Description: "About topic", TagList: []string{"tag1", "tag2", "bench"}, CreatedAt: time.Now(), FavoritesCount: i}
		a.Author.Username = fmt.Sprintf("bench%d", i)
		l.Articles = append(l.Articles, a)
	}
	l.ArticlesCount = 5000
	v := homeView{Tab: "global", Tags: []string{"bench", "tag0", "tag1", "tag2", "tag3", "tag4", "tag5", "tag6", "tag7", "tag8", "tag9"}}
	v.List = s.listOf(visitor{}, l, 1, func(n int) string { return fmt.Sprintf("/?page=%d", n) }, "/", "Articles")
	r := httptest.NewRequest("GET", "/", nil)
	for b.Loop() {
		w := httptest.NewRecorder()
		s.render(w, r, 200, "home", v)
	}
}

// Anonymous previews come from the cache only while everything they show is
// the same; a signed-in visitor's (with their CSRF token) never do.
func TestPreviewCacheShowsWhatChanged(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	s, err := New(Options{Upstream: u})
	require.NoError(t, err)
	a := article{Slug: "s", Title: "Title", Description: "About <b>", TagList: []string{"go"}, CreatedAt: time.Now(), FavoritesCount: 1}
	a.Author.Username = "alice"
	page := func(v visitor, a article) string {
		view := homeView{Tab: "global"}
		view.List = s.listOf(v, articleList{Articles: []article{a}, ArticlesCount: 1}, 1, func(int) string { return "/" }, "/", "Articles")
		w := httptest.NewRecorder()
		s.render(w, httptest.NewRequest("GET", "/", nil), 200, "home", view)
		return w.Body.String()
	}
	first := page(visitor{}, a)
	assert.Contains(t, first, "About &lt;b&gt;", "escaped as ever")
	assert.Equal(t, first, page(visitor{}, a))
	assert.Len(t, s.previews, 1)

	a.FavoritesCount = 2
	assert.Contains(t, page(visitor{}, a), "♥</span> 2<")
	a.Title = "New title"
	assert.Contains(t, page(visitor{}, a), "New title")

	signedIn := page(visitor{username: "bob", formToken: "token-of-bob"}, a)
	assert.Contains(t, signedIn, "token-of-bob")
	assert.Len(t, s.previews, 3, "signed-in previews are not kept")
}
