package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One client cannot take the tier's CPU: its inspections run two at a
// time (a third waits for one to end, and gives up after maxWait with
// 503); another client's go ahead beside them.
func TestOneClientsInspectionsRunTwoAtATime(t *testing.T) {
	in := newInspections(2, 4) // as on 2 cores, whatever this machine has
	ctx := context.Background()
	r1, ok := in.acquire(ctx, "203.0.113.9")
	require.True(t, ok)
	r2, ok := in.acquire(ctx, "203.0.113.9")
	require.True(t, ok)

	third := make(chan time.Time, 1)
	go func() {
		r3, ok := in.acquire(ctx, "203.0.113.9")
		if ok {
			third <- time.Now()
			r3()
		}
		close(third)
	}()
	other, ok := in.acquire(ctx, "198.51.100.7")
	require.True(t, ok, "another client is not queued behind the first")
	other()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	r1()
	at, ok := <-third
	require.True(t, ok, "the third got a slot when one ended")
	assert.False(t, at.Before(released), "not before")
	r2()

	gone, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	a, _ := in.acquire(ctx, "192.0.2.1")
	b, _ := in.acquire(ctx, "192.0.2.1")
	_, ok = in.acquire(gone, "192.0.2.1")
	assert.False(t, ok, "a request that cannot get a slot is refused, not queued forever")
	a()
	b()
	in.mu.Lock()
	assert.Empty(t, in.clients, "nothing is kept for clients with nothing running")
	in.mu.Unlock()
}

func TestJSONDepthIsCountedOutsideStrings(t *testing.T) {
	tests := []struct {
		body string
		want int
	}{
		{`{"user":{"email":"a"}}`, 2},
		{`[[[]]]`, 3},
		{`{"a":"[[[[[[{{{{"}`, 1},
		{`{"a":"\"[[[["}`, 1},
		{`not json`, 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, jsonDepth([]byte(tt.body)), tt.body)
	}
}

// The health check fails when the tier makes no progress — requests wait
// for an inspection slot and none has ended for stuckAfter (a starved or
// wedged instance, which the load balancer then replaces) — and passes
// when it is merely busy (slots taken, inspections ending): a load must
// not get every instance replaced.
func TestHealthFailsWhenInspectionsMakeNoProgress(t *testing.T) {
	h := &Handler{inspecting: newInspections(1, 1)}
	check := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code
	}
	assert.Equal(t, http.StatusOK, check())
	release, ok := h.inspecting.acquire(context.Background(), "someone")
	require.True(t, ok)
	assert.Equal(t, http.StatusOK, check(), "busy, nobody waiting")
	waiter := make(chan struct{})
	go func() {
		defer close(waiter)
		if r, ok := h.inspecting.acquire(context.Background(), "another"); ok {
			r()
		}
	}()
	require.Eventually(t, func() bool { return h.inspecting.waiting.Load() > 0 }, time.Second, time.Millisecond)
	assert.Equal(t, http.StatusOK, check(), "waiting, but an inspection ended lately")
	h.inspecting.lastDone.Store(time.Now().Add(-stuckAfter - time.Second).UnixNano())
	assert.Equal(t, http.StatusServiceUnavailable, check(), "waiting, and nothing ended for stuckAfter")
	release()
	<-waiter
	assert.Equal(t, http.StatusOK, check(), "progress again")
}
