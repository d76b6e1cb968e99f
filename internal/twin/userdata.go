package twin

import (
	"encoding/base64"
	"fmt"

	"webstack/internal/cloudinit"
	"webstack/internal/offline/plan"
)

// Boot is an instance's user data as the plan renders it.
type Boot struct {
	Doc string // the #cloud-config document
	Env string // its environment file
}

// UserData decodes the user data of a launch template or an instance.
func UserData(r plan.Resource) (Boot, error) {
	raw, _ := r.Inputs["userData"].(string)
	if raw == "" {
		raw, _ = r.Inputs["userDataBase64"].(string)
	}
	if raw == "" {
		return Boot{}, fmt.Errorf("twin: %s has no user data", r.Key())
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Boot{}, fmt.Errorf("twin: %s user data: %w", r.Key(), err)
	}
	env, err := cloudinit.File(string(b), cloudinit.EnvFile)
	if err != nil {
		return Boot{}, fmt.Errorf("twin: %s: %w", r.Key(), err)
	}
	return Boot{Doc: string(b), Env: env}, nil
}
