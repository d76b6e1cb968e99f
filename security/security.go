// Package security provides the webstack security tier: the security-group
// chain between tiers, one least-privilege IAM role per compute tier, the
// application's secrets (NewSecrets), and the edge in front of the entry
// point (NewEdge, after compute: the AWS WAF web ACL, its association and
// Shield Advanced).
package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/vpc"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
	"webstack/internal/iampolicy"
)

// ssmManagedPolicy lets Session Manager reach the instances: the only way in
// (no SSH, no key pairs).
const ssmManagedPolicy = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"

// Args configures New.
type Args struct {
	// VpcID is the VPC the security groups belong to. Required.
	VpcID pulumi.StringInput
	// WebPort is the port the web tier listens on. Defaults to the config
	// table's webPort.
	WebPort int
	// APIPort is the port the api tier (and the internal ALB) listens on.
	// Defaults to 8081 (the config table's apiPort).
	APIPort int
	// DatabasePort is the port the database listens on (database.Port).
	// Required.
	DatabasePort int
	// LoadBalancer selects the load-balanced chain (internet → public ALB →
	// web → internal ALB → api → database). Defaults to nil: internet → web
	// → api → database.
	LoadBalancer *LoadBalancerArgs
	// Without a LoadBalancer, the web instance faces the internet itself.
	// WebTLSSecretArn is the secret its certificate and key are in: it
	// serves HTTPS on 443 (and redirects on WebPort) to anyone, and its role
	// alone may read the secret. Without it the web serves plain HTTP on
	// WebPort to HTTPIngressCIDRs only (default: none — config requires
	// them with allowHttp).
	WebTLSSecretArn  string
	HTTPIngressCIDRs []string
}

// LoadBalancerArgs configures the load balancers' part of the chain.
type LoadBalancerArgs struct {
	// PublicHTTPS opens 443 on the public ALB. Defaults to false (only 80).
	PublicHTTPS bool
}

// Security is the security tier.
type Security struct {
	pulumi.ResourceState

	WebSecurityGroupID      pulumi.StringOutput
	APISecurityGroupID      pulumi.StringOutput
	DatabaseSecurityGroupID pulumi.StringOutput
	// LoadBalancers is set with a LoadBalancer.
	LoadBalancers *LoadBalancerGroups

	// WebRole and APIRole are the tiers' instance roles; later grants
	// (artefact, secrets) attach to them, scoped to ARNs.
	WebRole *iam.Role
	APIRole *iam.Role
	// WebTLSGrant is the web role's read of WebTLSSecretArn (nil without
	// one): the web instance must not boot before it.
	WebTLSGrant        pulumi.Resource
	WebInstanceProfile *iam.InstanceProfile
	APIInstanceProfile *iam.InstanceProfile
}

// LoadBalancerGroups are the load-balanced chain's own: the ALBs' security
// groups.
type LoadBalancerGroups struct {
	PublicSecurityGroupID, InternalSecurityGroupID pulumi.StringOutput
}

// New creates the security tier.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Security, error) {
	c := &Security{}
	if err := ctx.RegisterComponentResource("webstack:security:Security", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	if a.WebPort == 0 {
		a.WebPort = config.Default[int]("webPort")
	}
	if a.APIPort == 0 {
		a.APIPort = config.Default[int]("apiPort")
	}
	if a.VpcID == nil {
		return nil, fmt.Errorf("security: VpcID is required")
	}
	if a.DatabasePort <= 0 {
		return nil, fmt.Errorf("security: DatabasePort is required")
	}
	if err := c.securityGroups(ctx, name, &a); err != nil {
		return nil, err
	}
	var err error
	if c.WebRole, c.WebInstanceProfile, err = instanceRole(ctx, c, name+"-web"); err != nil {
		return nil, err
	}
	if c.APIRole, c.APIInstanceProfile, err = instanceRole(ctx, c, name+"-api"); err != nil {
		return nil, err
	}
	if a.LoadBalancer == nil && a.WebTLSSecretArn != "" {
		grant, err := iam.NewRolePolicy(ctx, name+"-web-tls-read", &iam.RolePolicyArgs{
			Role: c.WebRole.ID(),
			Policy: iampolicy.Document(iampolicy.Allow{
				Sid:       "ReadWebCertificate",
				Actions:   []string{"secretsmanager:GetSecretValue"},
				Resources: pulumi.StringArray{pulumi.String(a.WebTLSSecretArn)},
			}),
		}, pulumi.Parent(c))
		if err != nil {
			return nil, fmt.Errorf("security: web certificate grant: %w", err)
		}
		c.WebTLSGrant = grant
	}
	outs := pulumi.Map{
		"webSecurityGroupId":      c.WebSecurityGroupID,
		"apiSecurityGroupId":      c.APISecurityGroupID,
		"databaseSecurityGroupId": c.DatabaseSecurityGroupID,
		"webRoleArn":              c.WebRole.Arn,
		"apiRoleArn":              c.APIRole.Arn,
	}
	if err := ctx.RegisterResourceOutputs(c, outs); err != nil {
		return nil, err
	}
	return c, nil
}

// rule is one allowed flow: from a source (a group, or a CIDR) to a port of
// a target group.
type rule struct {
	name   string
	to     *ec2.SecurityGroup
	port   int
	fromSG *ec2.SecurityGroup // nil with cidr
	cidr   string
}

// securityGroups builds the chain. Every group starts empty; each allowed
// flow is one ingress rule on the receiver and, where the sender is a group,
// one egress rule on the sender, so nothing can talk to anything the chain
// does not name. Instances may also reach HTTPS anywhere (Session Manager,
// S3, Secrets Manager, package mirrors through NAT).
func (c *Security) securityGroups(ctx *pulumi.Context, name string, a *Args) error {
	newSG := func(tier, description string) (*ec2.SecurityGroup, error) {
		sg, err := ec2.NewSecurityGroup(ctx, name+"-"+tier, &ec2.SecurityGroupArgs{
			VpcId:               a.VpcID,
			Description:         pulumi.String(description),
			RevokeRulesOnDelete: pulumi.Bool(true),
			Tags:                pulumi.StringMap{"Name": pulumi.String(name + "-" + tier)},
		}, pulumi.Parent(c))
		if err != nil {
			return nil, fmt.Errorf("security: %s security group: %w", tier, err)
		}
		return sg, nil
	}
	web, err := newSG("web", "webstack web tier")
	if err != nil {
		return err
	}
	api, err := newSG("api", "webstack api tier")
	if err != nil {
		return err
	}
	db, err := newSG("db", "webstack DocumentDB")
	if err != nil {
		return err
	}
	c.WebSecurityGroupID, c.APISecurityGroupID, c.DatabaseSecurityGroupID = web.ID().ToStringOutput(), api.ID().ToStringOutput(), db.ID().ToStringOutput()

	rules := []rule{{name: "api-to-db", to: db, port: a.DatabasePort, fromSG: api}}
	if a.LoadBalancer != nil {
		publicALB, err := newSG("public-alb", "webstack internet-facing ALB")
		if err != nil {
			return err
		}
		internalALB, err := newSG("internal-alb", "webstack internal ALB")
		if err != nil {
			return err
		}
		c.LoadBalancers = &LoadBalancerGroups{PublicSecurityGroupID: publicALB.ID().ToStringOutput(), InternalSecurityGroupID: internalALB.ID().ToStringOutput()}
		rules = append(rules,
			rule{name: "internet-http", to: publicALB, port: 80, cidr: "0.0.0.0/0"},
			rule{name: "public-alb-to-web", to: web, port: a.WebPort, fromSG: publicALB},
			rule{name: "web-to-internal-alb", to: internalALB, port: a.APIPort, fromSG: web},
			rule{name: "internal-alb-to-api", to: api, port: a.APIPort, fromSG: internalALB},
		)
		if a.LoadBalancer.PublicHTTPS {
			rules = append(rules, rule{name: "internet-https", to: publicALB, port: 443, cidr: "0.0.0.0/0"})
		}
	} else {
		if a.WebTLSSecretArn != "" {
			rules = append(rules,
				rule{name: "internet-https", to: web, port: 443, cidr: "0.0.0.0/0"},
				rule{name: "internet-http", to: web, port: a.WebPort, cidr: "0.0.0.0/0"}, // redirects to HTTPS
			)
		} else {
			for i, cidr := range a.HTTPIngressCIDRs {
				n := "internet-http"
				if i > 0 {
					n = fmt.Sprintf("internet-http-%d", i+1)
				}
				rules = append(rules, rule{name: n, to: web, port: a.WebPort, cidr: cidr})
			}
		}
		rules = append(rules, rule{name: "web-to-api", to: api, port: a.APIPort, fromSG: web})
	}
	for _, r := range rules {
		ingress := &vpc.SecurityGroupIngressRuleArgs{
			SecurityGroupId: r.to.ID(),
			IpProtocol:      pulumi.String("tcp"),
			FromPort:        pulumi.Int(r.port),
			ToPort:          pulumi.Int(r.port),
			Description:     pulumi.String(r.name),
			Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-" + r.name)},
		}
		if r.fromSG != nil {
			ingress.ReferencedSecurityGroupId = r.fromSG.ID()
		} else {
			ingress.CidrIpv4 = pulumi.String(r.cidr)
		}
		if _, err := vpc.NewSecurityGroupIngressRule(ctx, name+"-"+r.name, ingress, pulumi.Parent(c)); err != nil {
			return fmt.Errorf("security: ingress %s: %w", r.name, err)
		}
		if r.fromSG == nil {
			continue
		}
		if _, err := vpc.NewSecurityGroupEgressRule(ctx, name+"-"+r.name, &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId:           r.fromSG.ID(),
			ReferencedSecurityGroupId: r.to.ID(),
			IpProtocol:                pulumi.String("tcp"),
			FromPort:                  pulumi.Int(r.port),
			ToPort:                    pulumi.Int(r.port),
			Description:               pulumi.String(r.name),
			Tags:                      pulumi.StringMap{"Name": pulumi.String(name + "-" + r.name)},
		}, pulumi.Parent(c)); err != nil {
			return fmt.Errorf("security: egress %s: %w", r.name, err)
		}
	}
	for _, sg := range []struct {
		tier string
		sg   *ec2.SecurityGroup
	}{{"web", web}, {"api", api}} {
		if _, err := vpc.NewSecurityGroupEgressRule(ctx, name+"-"+sg.tier+"-https-out", &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId: sg.sg.ID(),
			CidrIpv4:        pulumi.String("0.0.0.0/0"),
			IpProtocol:      pulumi.String("tcp"),
			FromPort:        pulumi.Int(443),
			ToPort:          pulumi.Int(443),
			Description:     pulumi.String("HTTPS to AWS APIs (SSM, S3, Secrets Manager)"),
			Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-" + sg.tier + "-https-out")},
		}, pulumi.Parent(c)); err != nil {
			return fmt.Errorf("security: %s https egress: %w", sg.tier, err)
		}
	}
	return nil
}

// instanceRole is a role EC2 may assume, with Session Manager access and
// nothing else, and its instance profile.
func instanceRole(ctx *pulumi.Context, parent pulumi.Resource, name string) (*iam.Role, *iam.InstanceProfile, error) {
	role, err := iam.NewRole(ctx, name, &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
		Tags:             pulumi.StringMap{"Name": pulumi.String(name)},
	}, pulumi.Parent(parent))
	if err != nil {
		return nil, nil, fmt.Errorf("security: role %s: %w", name, err)
	}
	if _, err := iam.NewRolePolicyAttachment(ctx, name+"-ssm", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.String(ssmManagedPolicy),
	}, pulumi.Parent(role)); err != nil {
		return nil, nil, fmt.Errorf("security: role %s ssm policy: %w", name, err)
	}
	profile, err := iam.NewInstanceProfile(ctx, name, &iam.InstanceProfileArgs{
		Role: role.Name,
		Tags: pulumi.StringMap{"Name": pulumi.String(name)},
	}, pulumi.Parent(parent))
	if err != nil {
		return nil, nil, fmt.Errorf("security: instance profile %s: %w", name, err)
	}
	return role, profile, nil
}
