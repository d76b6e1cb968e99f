package localdb

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// FerretDB 1.24's SQLite backend stores each document as "sjson": JSON
// with the BSON types in a schema beside the values,
//
//	{"$s": {"p": {field: {"t": type, ...}}, "$k": [fields in order]}, field: value, ...}
//
// where a string, an objectId (hex), a date (Unix milliseconds) and every
// number are JSON scalars, and objects and arrays carry nested schemas
// ("$s", "i"). The planner reads documents straight from SQLite, so it
// decodes sjson into BSON itself; a type it does not know makes the
// document undecodable and the query goes to FerretDB instead.

type sjsonSchema struct {
	Props map[string]*sjsonElem `json:"p"`
	Keys  []string              `json:"$k"`
}

type sjsonElem struct {
	Type   string       `json:"t"`
	Schema *sjsonSchema `json:"$s"`
	Items  []*sjsonElem `json:"i"`
}

// decodeSJSON turns one stored document into BSON.
func decodeSJSON(raw []byte) (bson.D, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var s sjsonSchema
	if err := json.Unmarshal(doc["$s"], &s); err != nil {
		return nil, fmt.Errorf("document schema: %w", err)
	}
	return decodeObject(&s, doc)
}

func decodeObject(s *sjsonSchema, values map[string]json.RawMessage) (bson.D, error) {
	out := make(bson.D, 0, len(s.Keys))
	for _, k := range s.Keys {
		e, ok := s.Props[k]
		if !ok {
			return nil, fmt.Errorf("field %q has no schema", k)
		}
		v, err := decodeValue(e, values[k])
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		out = append(out, bson.E{Key: k, Value: v})
	}
	return out, nil
}

func decodeValue(e *sjsonElem, raw json.RawMessage) (any, error) {
	switch e.Type {
	case "string":
		var v string
		return v, json.Unmarshal(raw, &v)
	case "bool":
		var v bool
		return v, json.Unmarshal(raw, &v)
	case "null":
		return nil, nil
	case "int":
		var v int32
		return v, json.Unmarshal(raw, &v)
	case "long":
		var v int64
		return v, json.Unmarshal(raw, &v)
	case "double":
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			// FerretDB writes the special values as strings.
			var sv string
			if json.Unmarshal(raw, &sv) != nil {
				return nil, err
			}
			switch sv {
			case "Infinity":
				return math.Inf(1), nil
			case "-Infinity":
				return math.Inf(-1), nil
			case "NaN":
				return math.NaN(), nil
			}
			return nil, err
		}
		return v, nil
	case "date":
		var ms int64
		if err := json.Unmarshal(raw, &ms); err != nil {
			return nil, err
		}
		return bson.DateTime(ms), nil
	case "objectId":
		var h string
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, err
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 12 {
			return nil, fmt.Errorf("objectId %q", h)
		}
		var id bson.ObjectID
		copy(id[:], b)
		return id, nil
	case "array":
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) != len(e.Items) {
			return nil, fmt.Errorf("array of %d items with %d schemas", len(items), len(e.Items))
		}
		out := make(bson.A, len(items))
		for i, it := range items {
			v, err := decodeValue(e.Items[i], it)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case "object":
		if e.Schema == nil {
			return nil, fmt.Errorf("object without a schema")
		}
		var values map[string]json.RawMessage
		if err := json.Unmarshal(raw, &values); err != nil {
			return nil, err
		}
		return decodeObject(e.Schema, values)
	}
	return nil, fmt.Errorf("type %q is not decoded here", e.Type)
}
