package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"webstack/app/conduit"
)

// decode reads exactly one JSON object into dst: unknown fields, wrong
// types (an operator object such as {"$ne": ""} where a string belongs),
// trailing data and oversized bodies are rejected.
func (a *API) decode(w http.ResponseWriter, r *http.Request, dst any) error {
	r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
	return Decode(r.Body, dst)
}

// Decode is decode without the HTTP plumbing (and the fuzz target).
func Decode(body io.Reader, dst any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return conduit.Errorf(conduit.CodeInvalid, "body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &conduit.Error{Code: codeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", tooLarge.Limit)}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return conduit.Errorf(conduit.CodeInvalid, "%s must be a %s", field, jsonType(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return conduit.Errorf(conduit.CodeInvalid, "body is not valid JSON")
	case errors.Is(err, io.EOF):
		return conduit.Errorf(conduit.CodeInvalid, "body can't be empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return conduit.Errorf(conduit.CodeInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return conduit.Errorf(conduit.CodeInvalid, "body is not valid JSON")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	case "bool":
		return "boolean"
	}
	return "number"
}
