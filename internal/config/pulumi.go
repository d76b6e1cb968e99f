package config

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumicfg "github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// FromPulumi loads the configuration of the running stack: project keys from
// the stack's config (Pulumi.<stack>.yaml, then Pulumi.yaml's defaults), and
// aws:region. Nothing here panics: a missing or malformed key is an error.
func FromPulumi(ctx *pulumi.Context) (*Config, error) {
	region, _ := pulumicfg.New(ctx, "aws").Try("region")
	return Load(pulumiSource{pulumicfg.New(ctx, Namespace)}, ctx.Project(), ctx.Stack(), region)
}

type pulumiSource struct{ cfg *pulumicfg.Config }

func (s pulumiSource) Get(key string) (string, bool) {
	v, err := s.cfg.Try(key)
	return v, err == nil
}

// Secret reads a secret key. The SDK's TrySecret is Try wrapped in a secret
// output; the loader needs the value's length to refuse a short secret
// before any resource is registered, so it takes the value here, as a
// Secret that never prints, and wraps it in a secret output at once.
func (s pulumiSource) Secret(key string) (Secret, bool) {
	v, err := s.cfg.Try(key)
	return Secret(v), err == nil
}
