package web

import "encoding/json"

func jsonString(s string) ([]byte, error) { return json.Marshal(s) }
