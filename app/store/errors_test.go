package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"webstack/app/conduit"
)

// What a failover answers is "unavailable" (503 with Retry-After), never
// an internal error; a duplicate key is a conflict; a missing document is
// not found; anything else stays an error of its own (500).
func TestErrorsAreClassifiedForAFailover(t *testing.T) {
	cmd := func(code int32, name string) error {
		return mongo.CommandError{Code: code, Name: name, Message: name}
	}
	write := func(code int) error {
		return mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: code, Message: fmt.Sprintf("code %d", code)}}}
	}
	concern := func(code int) error {
		return mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: code, Message: "write concern"}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want conduit.Code
	}{
		{"not primary (10107)", cmd(10107, "NotWritablePrimary"), conduit.CodeUnavailable},
		{"not primary, no secondaryOk (13435)", cmd(13435, "NotPrimaryNoSecondaryOk"), conduit.CodeUnavailable},
		{"node is recovering (13436)", cmd(13436, "NotPrimaryOrSecondary"), conduit.CodeUnavailable},
		{"primary stepped down (189)", cmd(189, "PrimarySteppedDown"), conduit.CodeUnavailable},
		{"interrupted by a state change (11602)", cmd(11602, "InterruptedDueToReplStateChange"), conduit.CodeUnavailable},
		{"shutting down (91)", cmd(91, "ShutdownInProgress"), conduit.CodeUnavailable},
		{"write concern: not primary", concern(10107), conduit.CodeUnavailable},
		{"a message that says not primary", errors.New("(NotWritablePrimary) not primary"), conduit.CodeUnavailable},
		{"network error", mongo.CommandError{Labels: []string{"NetworkError"}, Message: "connection reset"}, conduit.CodeUnavailable},
		{"server selection timeout", topology.ServerSelectionError{Wrapped: errors.New("no primary")}, conduit.CodeUnavailable},
		{"pool wait timeout", topology.WaitQueueTimeoutError{Wrapped: context.DeadlineExceeded}, conduit.CodeUnavailable},
		{"the request's deadline", fmt.Errorf("find: %w", context.DeadlineExceeded), conduit.CodeUnavailable},
		{"the local engine busy", errors.New("(InternalError) database is locked (5) (SQLITE_BUSY)"), conduit.CodeUnavailable},
		{"authentication refused", cmd(18, "AuthenticationFailed"), conduit.CodeUnavailable},
		{"duplicate key", write(11000), conduit.CodeConflict},
		{"no document", mongo.ErrNoDocuments, conduit.CodeNotFound},
		{"a bad query is a bug", cmd(2, "BadValue"), 0},
		{"an unknown failure is a bug", errors.New("something else"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, conduit.CodeOf(classify(tc.err)))
		})
	}
}
