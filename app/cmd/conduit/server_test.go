package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/secrets"
	"webstack/app/secrets/secretstest"
)

// A managed-secret rotation sets the new password in DocumentDB before it
// promotes the new value to AWSCURRENT: in between, the current value is
// refused and the pending one works. The api's connection strings follow.
func TestDocumentDBCredentialsFollowARotation(t *testing.T) {
	fake, client := secretstest.Start(t)
	fake.Set(arn, secrets.Current, `{"username":"conduit","password":"old"}`)
	s := &server{Settings: &Settings{DBHost: "db.cluster-x.us-east-1.docdb.amazonaws.com", DBPort: 27017, DBSecretARN: arn, DBCAFile: "/etc/conduit/global-bundle.pem"}}
	uri := s.documentDB(client)
	ctx := context.Background()

	first, err := uri(ctx, "")
	require.NoError(t, err)
	assert.Contains(t, first, "conduit:old@")
	assert.Contains(t, first, "tls=true")

	fake.Set(arn, secrets.Pending, `{"username":"conduit","password":"new"}`) // setSecret done, not yet promoted
	during, err := uri(ctx, first)
	require.NoError(t, err)
	assert.Contains(t, during, "conduit:new@", "the refused current value gives way to the pending one")

	fake.Promote(arn)
	after, err := uri(ctx, first)
	require.NoError(t, err)
	assert.Equal(t, during, after)
	again, err := uri(ctx, "")
	require.NoError(t, err)
	assert.True(t, strings.Contains(again, "conduit:new@"), "a fresh start reads the promoted value")
}
