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
