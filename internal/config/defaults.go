package config

import "fmt"

// Default returns the documented default of a project key, the one table
// of defaults: component Args that have a default take it from here. It
// panics on a key the table does not have or a type that does not match,
// which is a programming error every component test reaches.
func Default[T any](key string) T {
	for _, k := range keys {
		if k.Name == key {
			v, ok := k.Default.(T)
			if !ok {
				panic(fmt.Sprintf("config: default of %s is %T, not %T", key, k.Default, v))
			}
			return v
		}
	}
	panic(fmt.Sprintf("config: no key %s", key))
}
