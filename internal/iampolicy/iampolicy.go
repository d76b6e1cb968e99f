// Package iampolicy writes the IAM policy documents of the stack's grants:
// Allow statements naming their actions and the exact resources they cover.
package iampolicy

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// Allow is one Allow statement.
type Allow struct {
	Sid       string
	Actions   []string
	Resources pulumi.StringArrayInput
}

// Document is the JSON policy document of the statements.
func Document(statements ...Allow) pulumi.StringOutput {
	var list pulumi.Array
	for _, s := range statements {
		m := pulumi.Map{
			"Effect":   pulumi.String("Allow"),
			"Action":   pulumi.ToStringArray(s.Actions),
			"Resource": s.Resources,
		}
		if s.Sid != "" {
			m["Sid"] = pulumi.String(s.Sid)
		}
		list = append(list, m)
	}
	return pulumi.JSONMarshal(pulumi.Map{"Version": pulumi.String("2012-10-17"), "Statement": list})
}
