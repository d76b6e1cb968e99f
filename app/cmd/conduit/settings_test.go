package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/httpapi"
)

// The settings' defaults are the api's: one number, stated twice, held
// together here.
func TestAbuseLimitDefaultsAreTheAPIs(t *testing.T) {
	s, err := parseSettings("local", nil, nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, httpapi.DefaultQuotas(), s.Quotas)
	assert.Equal(t, 30*time.Minute, s.SessionIdle)
	assert.Equal(t, 12*time.Hour, s.SessionLifetime)
}

// Each abuse setting takes what it says and refuses the rest, naming the
// flag; the admin listener stays on loopback unless told otherwise.
func TestAbuseSettingsAreValidated(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		ok   bool
	}{
		{[]string{"--quota-articles", "5/30m"}, nil, true},
		{[]string{"--quota-articles", "off"}, nil, true},
		{nil, []string{"CONDUIT_QUOTA_COMMENTS=0/1h"}, false},
		{[]string{"--quota-comments", "10"}, nil, false},
		{[]string{"--quota-comments", "10/1s"}, nil, false},
		{[]string{"--session-idle", "10s"}, nil, false},
		{[]string{"--session-lifetime", "24h"}, nil, true},
		{[]string{"--admin-addr", "0.0.0.0:9090"}, nil, false},
		{[]string{"--admin-addr", ":9090"}, nil, false},
		{[]string{"--admin-addr", "0.0.0.0:9090", "--insecure-admin-public", "true"}, nil, true},
		{[]string{"--admin-addr", "localhost:9090"}, nil, true},
		{[]string{"--admin-addr", "[::1]:9090"}, nil, true},
	}
	for _, tt := range tests {
		_, err := parseSettings("local", tt.args, tt.env, io.Discard)
		if tt.ok {
			assert.NoError(t, err, "%v %v", tt.args, tt.env)
		} else {
			assert.Error(t, err, "%v %v", tt.args, tt.env)
		}
	}
	s, err := parseSettings("local", []string{"--quota-articles", "5/30m"}, nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, httpapi.Quota{Limit: 5, Window: 30 * time.Minute}, s.Quotas.Articles)
}
