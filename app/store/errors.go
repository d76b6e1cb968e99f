package store

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"webstack/app/conduit"
)

// failoverCodes are the server errors that mean "this node is not (or no
// longer) the primary, or is going away": what a DocumentDB failover
// answers while the cluster endpoint moves to the new primary. They are
// the retryable-error codes of the drivers' Retryable Writes specification
// (mongodb/specifications, retryable-writes.md, "determining retryable
// errors"): the operation may be sent again once a primary is found.
var failoverCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary ("not primary", formerly "not master")
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	112,   // WriteConflict (two writers of one document at once: the loser tries again)
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary ("node is recovering")
	50,    // MaxTimeMSExpired: the server gave up; nothing was applied by a read
}

// transient reports an error after which the database may answer again
// soon, and after which a write's outcome may be unknown: a failover, a
// network error, no server selected in time, no pooled connection, the
// local engine busy. The store sends idempotent operations again after
// these; what is still failing when the request's deadline comes is
// "unavailable" (503), never an internal error.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var sel topology.ServerSelectionError
	var wq topology.WaitQueueTimeoutError
	var se mongo.ServerError
	switch {
	case mongo.IsNetworkError(err), mongo.IsTimeout(err), errors.As(err, &sel), errors.As(err, &wq),
		errors.Is(err, mongo.ErrClientDisconnected), errors.Is(err, errRetired), isBusy(err):
		return true
	case errors.As(err, &se):
		for _, c := range failoverCodes {
			if se.HasErrorCode(c) {
				return true
			}
		}
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not primary") || strings.Contains(msg, "not master") ||
		strings.Contains(msg, "node is recovering") || strings.Contains(msg, "connection pool for")
}

// isBusy reports a database that was too busy to take the operation, which
// did not happen and may be retried: FerretDB passes SQLite's "database is
// locked" through as an InternalError.
//
// "database schema has changed" is SQLite's answer to a statement prepared
// before a table or index was created: the statement did not run, and runs
// when tried again.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") ||
		strings.Contains(msg, "database schema has changed")
}

// isDuplicate reports a unique index refusing a write. Which index is not
// read from the message (its form differs between MongoDB, DocumentDB and
// FerretDB): the callers read the data to learn what is taken.
func isDuplicate(err error) bool {
	// FerretDB 1.x on SQLite reports a unique-index violation by an update
	// as an InternalError carrying SQLite's message, not as the 11000
	// write error the driver recognises (inserts are fine).
	return err != nil && (mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed"))
}

// classify turns driver errors into domain errors where the client should
// see something other than a 500: a failing-over, busy, slow or
// unreachable database is "unavailable" (503, retry later); a document
// that is not there is "not found".
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case conduit.CodeOf(err) != 0:
		return err
	case errors.Is(err, mongo.ErrNoDocuments):
		return conduit.Errorf(conduit.CodeNotFound, "not found")
	case isDuplicate(err):
		return &conduit.Error{Code: conduit.CodeConflict, Message: "already exists", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), transient(err), isAuthError(err):
		return conduit.Unavailable(err)
	}
	return err
}
