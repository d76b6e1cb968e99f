package plan

// Get walks nested inputs or outputs by map key (string) or list index
// (int): Get(r.Inputs, "blockDeviceMappings", 0, "ebs", "encrypted"). A
// missing step gives nil.
func Get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k < 0 || k >= len(a) {
				return nil
			}
			v = a[k]
		default:
			return nil
		}
	}
	return v
}

// List is v as a list, or nil.
func List(v any) []any {
	a, _ := v.([]any)
	return a
}

// Number is v as a number (inputs carry int64 or float64), or 0.
func Number(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}
