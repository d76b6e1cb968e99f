package plan_test

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/plan"
)

// TestOutputsOfPlainValuesAreNeverMissed: an output made from a plain value
// belongs to no context, and RunErr does not wait for its apply; the graph
// must still hold it every time (it once lost a stack's amiId now and then).
func TestOutputsOfPlainValuesAreNeverMissed(t *testing.T) {
	for range 200 {
		g, err := plan.Run("webstack", "test", map[string]string{"aws:region": "us-east-1"}, func(ctx *pulumi.Context) (pulumi.Map, error) {
			return pulumi.Map{"amiId": pulumi.String("ami-0abcdef1234567890").ToStringOutput()}, nil
		})
		require.NoError(t, err)
		require.Equal(t, "ami-0abcdef1234567890", g.Outputs["amiId"])
	}
}
