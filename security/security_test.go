package security_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/database"
	"webstack/internal/config"
	"webstack/internal/offline/plan"
	"webstack/security"
)

func securityGraph(t *testing.T, args security.Args) *plan.Graph {
	t.Helper()
	if args.VpcID == nil {
		args.VpcID = pulumi.String("vpc-0123456789abcdef0")
	}
	if args.DatabasePort == 0 {
		args.DatabasePort = database.Port
	}
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := security.New(ctx, "security", &args)
		return err
	})
	require.NoError(t, err)
	return g
}

// edges returns "source -> group:port" for every ingress rule.
func edges(g *plan.Graph) []string {
	name := map[string]string{}
	for _, sg := range g.OfType("aws:ec2/securityGroup:SecurityGroup") {
		name[sg.ID] = strings.TrimPrefix(sg.Name, "security-")
	}
	var out []string
	for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		src := fmt.Sprint(r.Inputs["cidrIpv4"])
		if ref, ok := r.Inputs["referencedSecurityGroupId"]; ok {
			src = name[fmt.Sprint(ref)]
		}
		out = append(out, fmt.Sprintf("%s -> %s:%v", src, name[fmt.Sprint(r.Inputs["securityGroupId"])], r.Inputs["fromPort"]))
	}
	sort.Strings(out)
	return out
}

func TestSecurityGroupChainAllowsOnlyTheArchitecturePath(t *testing.T) {
	tests := []struct {
		name string
		args security.Args
		want []string
	}{
		{"no load balancer, no certificate, no audience: nothing reaches the web", security.Args{}, []string{
			"api -> db:27017", fmt.Sprintf("web -> api:%d", config.Default[int]("apiPort")),
		}},
		{"no load balancer, plain HTTP to two networks", security.Args{WebPort: 80, HTTPIngressCIDRs: []string{"203.0.113.0/24", "198.51.100.0/24"}}, []string{
			"198.51.100.0/24 -> web:80", "203.0.113.0/24 -> web:80", "api -> db:27017", "web -> api:8081"}},
		{"no load balancer, HTTPS from a secret (80 redirects)", security.Args{WebPort: 80, WebTLSSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:tls-AbCdEf"}, []string{
			"0.0.0.0/0 -> web:443", "0.0.0.0/0 -> web:80", "api -> db:27017", "web -> api:8081"}},
		{"load balancers with HTTPS", security.Args{LoadBalancer: &security.LoadBalancerArgs{PublicHTTPS: true}}, []string{
			"0.0.0.0/0 -> public-alb:443", "0.0.0.0/0 -> public-alb:80", "api -> db:27017",
			"internal-alb -> api:8081", "public-alb -> web:8080", "web -> internal-alb:8081",
		}},
		{"load balancers, plain HTTP", security.Args{LoadBalancer: &security.LoadBalancerArgs{}}, []string{
			"0.0.0.0/0 -> public-alb:80", "api -> db:27017",
			"internal-alb -> api:8081", "public-alb -> web:8080", "web -> internal-alb:8081",
		}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, edges(securityGraph(t, tt.args)), tt.name)
	}
}

// Every flow between groups is an ingress rule on the receiver and an
// egress rule on the sender; the only other egress is HTTPS out (AWS APIs).
func TestEgressMirrorsIngressAndOtherwiseOnlyHTTPS(t *testing.T) {
	g := securityGraph(t, security.Args{LoadBalancer: &security.LoadBalancerArgs{PublicHTTPS: true}})
	ingress := map[string]bool{}
	for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		if ref, ok := r.Inputs["referencedSecurityGroupId"]; ok {
			ingress[fmt.Sprintf("%v->%v:%v", ref, r.Inputs["securityGroupId"], r.Inputs["fromPort"])] = true
		}
	}
	for _, r := range g.OfType("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") {
		if cidr, ok := r.Inputs["cidrIpv4"]; ok {
			assert.Equal(t, "0.0.0.0/0", cidr)
			assert.EqualValues(t, 443, r.Inputs["fromPort"], "%s: only HTTPS leaves for anywhere", r.Name)
			continue
		}
		assert.True(t, ingress[fmt.Sprintf("%v->%v:%v", r.Inputs["securityGroupId"], r.Inputs["referencedSecurityGroupId"], r.Inputs["fromPort"])], "%s has its ingress twin", r.Name)
	}
}

func TestNoSSHAndNoAllProtocolRules(t *testing.T) {
	for _, args := range []security.Args{{}, {LoadBalancer: &security.LoadBalancerArgs{PublicHTTPS: true}}} {
		for _, r := range securityGraph(t, args).OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
			from, to := plan.Number(r.Inputs["fromPort"]), plan.Number(r.Inputs["toPort"])
			assert.False(t, from <= 22 && 22 <= to, "%s opens port 22", r.Name)
			assert.NotEqual(t, "-1", r.Inputs["ipProtocol"], "%s allows all protocols", r.Name)
		}
	}
}

func TestDatabaseIsReachableOnlyFromTheAPITier(t *testing.T) {
	g := securityGraph(t, security.Args{LoadBalancer: &security.LoadBalancerArgs{}})
	db, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-db")
	api, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-api")
	var sources []string
	for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		if r.Inputs["securityGroupId"] == db.ID {
			sources = append(sources, fmt.Sprintf("%v:%v", r.Inputs["referencedSecurityGroupId"], r.Inputs["fromPort"]))
		}
	}
	assert.Equal(t, []string{api.ID + ":27017"}, sources)
}

func TestEachTierRoleMayOnlyUseSessionManager(t *testing.T) {
	g := securityGraph(t, security.Args{})
	for _, tier := range []string{"web", "api"} {
		role, ok := g.ByKey("aws:iam/role:Role::security-" + tier)
		require.True(t, ok)
		var trust struct {
			Statement []struct {
				Principal struct{ Service string }
				Action    string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(role.Inputs["assumeRolePolicy"])), &trust))
		require.Len(t, trust.Statement, 1)
		assert.Equal(t, "ec2.amazonaws.com", trust.Statement[0].Principal.Service)
		var attached []any
		for _, att := range g.OfType("aws:iam/rolePolicyAttachment:RolePolicyAttachment") {
			if att.Inputs["role"] == role.ID {
				attached = append(attached, att.Inputs["policyArn"])
			}
		}
		assert.Equal(t, []any{"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}, attached, "%s: nothing but Session Manager", tier)
	}
	assert.Empty(t, g.OfType("aws:iam/rolePolicy:RolePolicy"), "grants come from the tiers that own the resources")
}

func TestSecurityNeedsItsVPCAndTheDatabasesPort(t *testing.T) {
	for _, tc := range []struct {
		args security.Args
		want string
	}{
		{security.Args{DatabasePort: database.Port}, "VpcID is required"},
		{security.Args{VpcID: pulumi.String("vpc-0123456789abcdef0")}, "DatabasePort is required"},
	} {
		_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
			_, err := security.New(ctx, "security", &tc.args)
			return err
		})
		assert.ErrorContains(t, err, tc.want)
	}
}

// The web instance's certificate secret is readable by the web role alone,
// and only that secret.
func TestOnlyTheWebRoleReadsItsCertificate(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tls-AbCdEf"
	g := securityGraph(t, security.Args{WebTLSSecretArn: arn})
	web, _ := g.ByKey("aws:iam/role:Role::security-web")
	var grants []plan.Resource
	for _, p := range g.OfType("aws:iam/rolePolicy:RolePolicy") {
		if strings.Contains(fmt.Sprint(p.Inputs["policy"]), "secretsmanager:") {
			grants = append(grants, p)
		}
	}
	require.Len(t, grants, 1)
	assert.Equal(t, web.ID, grants[0].Inputs["role"])
	assert.Contains(t, fmt.Sprint(grants[0].Inputs["policy"]), `"Resource":["`+arn+`"]`)
	assert.Empty(t, securityGraph(t, security.Args{}).OfType("aws:iam/rolePolicy:RolePolicy"), "no secret, no grant")
}
