package compute

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/bucket"
)

// TLSPolicy is the public HTTPS listener's policy: TLS 1.3 and 1.2 only.
const TLSPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// cluster builds the ha shape: public ALB → web ASG → internal ALB → api ASG.
func (c *App) cluster(ctx *pulumi.Context, name string, a *AppArgs, ami string) error {
	if a.CertificateArn == "" && !a.AllowHTTP {
		return fmt.Errorf("compute: the public ALB needs CertificateArn, or AllowHTTP set explicitly")
	}
	publicALB, err := c.loadBalancer(ctx, name+"-public", a, false, a.PublicALBSecurityGroupID, a.PublicSubnetIDs)
	if err != nil {
		return err
	}
	internalALB, err := c.loadBalancer(ctx, name+"-internal", a, true, a.InternalALBSecurityGroupID, a.PrivateSubnetIDs)
	if err != nil {
		return err
	}

	webTG, err := c.targetGroup(ctx, name+"-web", a.VpcID, a.Web.Port)
	if err != nil {
		return err
	}
	apiTG, err := c.targetGroup(ctx, name+"-api", a.VpcID, a.API.Port)
	if err != nil {
		return err
	}

	forward := func(tg *lb.TargetGroup) lb.ListenerDefaultActionArray {
		return lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"), TargetGroupArn: tg.Arn}}
	}
	https := a.CertificateArn != ""
	httpAction := forward(webTG)
	if https {
		httpAction = lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{
			Type: pulumi.String("redirect"),
			Redirect: &lb.ListenerDefaultActionRedirectArgs{
				Protocol: pulumi.String("HTTPS"), Port: pulumi.String("443"), StatusCode: pulumi.String("HTTP_301"),
			},
		}}
		if _, err := lb.NewListener(ctx, name+"-https", &lb.ListenerArgs{
			LoadBalancerArn: publicALB.Arn,
			Port:            pulumi.Int(443),
			Protocol:        pulumi.String("HTTPS"),
			SslPolicy:       pulumi.String(TLSPolicy),
			CertificateArn:  pulumi.String(a.CertificateArn),
			DefaultActions:  forward(webTG),
			Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-https")},
		}, pulumi.Parent(publicALB)); err != nil {
			return fmt.Errorf("compute: https listener: %w", err)
		}
	}
	if _, err := lb.NewListener(ctx, name+"-http", &lb.ListenerArgs{
		LoadBalancerArn: publicALB.Arn,
		Port:            pulumi.Int(80),
		Protocol:        pulumi.String("HTTP"),
		DefaultActions:  httpAction,
		Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-http")},
	}, pulumi.Parent(publicALB)); err != nil {
		return fmt.Errorf("compute: http listener: %w", err)
	}
	if _, err := lb.NewListener(ctx, name+"-internal", &lb.ListenerArgs{
		LoadBalancerArn: internalALB.Arn,
		Port:            pulumi.Int(a.API.Port),
		Protocol:        pulumi.String("HTTP"),
		DefaultActions:  forward(apiTG),
		Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-internal")},
	}, pulumi.Parent(internalALB)); err != nil {
		return fmt.Errorf("compute: internal listener: %w", err)
	}

	c.InternalURL = pulumi.Sprintf("http://%s:%d", internalALB.DnsName, a.API.Port)
	apiLT, err := c.launchTemplate(ctx, name+"-api", ami, a, &a.API, c.apiUserData(a))
	if err != nil {
		return err
	}
	webLT, err := c.launchTemplate(ctx, name+"-web", ami, a, &a.Web, c.webUserData(a, c.InternalURL))
	if err != nil {
		return err
	}
	web, err := c.group(ctx, name+"-web", a, &a.Web, webLT, webTG)
	if err != nil {
		return err
	}
	api, err := c.group(ctx, name+"-api", a, &a.API, apiLT, apiTG)
	if err != nil {
		return err
	}

	c.WebGroupName, c.APIGroupName = web.Name, api.Name
	c.EntryPointArn = publicALB.Arn
	scheme := "http"
	if https {
		scheme = "https"
	}
	c.URL = pulumi.Sprintf("%s://%s", scheme, publicALB.DnsName)
	return nil
}

// loadBalancer creates an ALB that drops invalid headers and mitigates HTTP
// desync; the public one optionally keeps access logs and refuses deletion.
func (c *App) loadBalancer(ctx *pulumi.Context, name string, a *AppArgs, internal bool, sg pulumi.StringInput, subnets pulumi.StringArrayInput) (*lb.LoadBalancer, error) {
	args := &lb.LoadBalancerArgs{
		LoadBalancerType:        pulumi.String("application"),
		Internal:                pulumi.Bool(internal),
		SecurityGroups:          pulumi.StringArray{sg},
		Subnets:                 subnets,
		DropInvalidHeaderFields: pulumi.Bool(true),
		DesyncMitigationMode:    pulumi.String(a.DesyncMitigationMode),
		EnableHttp2:             pulumi.Bool(true),
		IdleTimeout:             pulumi.Int(60),
		Tags:                    pulumi.StringMap{"Name": pulumi.String(name)},
	}
	if !internal {
		args.EnableDeletionProtection = pulumi.Bool(a.DeletionProtection)
		if a.AccessLogs {
			logs, err := c.accessLogBucket(ctx, name+"-logs")
			if err != nil {
				return nil, err
			}
			args.AccessLogs = &lb.LoadBalancerAccessLogsArgs{Bucket: logs.Name, Enabled: pulumi.Bool(true), Prefix: pulumi.String(name)}
		}
	}
	alb, err := lb.NewLoadBalancer(ctx, name, args, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: load balancer %s: %w", name, err)
	}
	return alb, nil
}

// accessLogBucket is a private bucket that the region's Elastic Load
// Balancing account may write access logs to, kept 90 days.
func (c *App) accessLogBucket(ctx *pulumi.Context, name string) (*bucket.Private, error) {
	elbAccount, err := elb.GetServiceAccount(ctx, nil, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: ELB service account: %w", err)
	}
	return bucket.NewPrivate(ctx, name, &bucket.PrivateArgs{
		ExpireDays: 90,
		Statements: func(arn pulumi.StringOutput) pulumi.Array {
			return pulumi.Array{pulumi.Map{
				"Sid":       pulumi.String("ELBAccessLogDelivery"),
				"Effect":    pulumi.String("Allow"),
				"Principal": pulumi.Map{"AWS": pulumi.String(elbAccount.Arn)},
				"Action":    pulumi.String("s3:PutObject"),
				"Resource":  pulumi.Sprintf("%s/*", arn),
			}}
		},
	}, pulumi.Parent(c))
}

func (c *App) targetGroup(ctx *pulumi.Context, name string, vpcID pulumi.StringInput, port int) (*lb.TargetGroup, error) {
	tg, err := lb.NewTargetGroup(ctx, name, &lb.TargetGroupArgs{
		VpcId:               vpcID,
		Port:                pulumi.Int(port),
		Protocol:            pulumi.String("HTTP"),
		TargetType:          pulumi.String("instance"),
		DeregistrationDelay: pulumi.Int(30),
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled:            pulumi.Bool(true),
			Path:               pulumi.String(HealthCheckPath),
			Port:               pulumi.String("traffic-port"),
			Protocol:           pulumi.String("HTTP"),
			Matcher:            pulumi.String("200"),
			Interval:           pulumi.Int(15),
			Timeout:            pulumi.Int(5),
			HealthyThreshold:   pulumi.Int(2),
			UnhealthyThreshold: pulumi.Int(3),
		},
		Tags: pulumi.StringMap{"Name": pulumi.String(name)},
	}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: target group %s: %w", name, err)
	}
	return tg, nil
}

// group is a tier's Auto Scaling group: every private subnet, ELB health
// checks, a rolling instance refresh whenever the launch template version
// changes, and CPU target tracking.
func (c *App) group(ctx *pulumi.Context, name string, a *AppArgs, t *TierArgs, lt *ec2.LaunchTemplate, tg *lb.TargetGroup) (*autoscaling.Group, error) {
	g, err := autoscaling.NewGroup(ctx, name, &autoscaling.GroupArgs{
		VpcZoneIdentifiers:     a.PrivateSubnetIDs,
		MinSize:                pulumi.Int(t.MinSize),
		MaxSize:                pulumi.Int(t.MaxSize),
		LaunchTemplate:         &autoscaling.GroupLaunchTemplateArgs{Id: lt.ID(), Version: version(lt)},
		TargetGroupArns:        pulumi.StringArray{tg.Arn},
		HealthCheckType:        pulumi.String("ELB"),
		HealthCheckGracePeriod: pulumi.Int(120),
		DefaultInstanceWarmup:  pulumi.Int(60),
		WaitForCapacityTimeout: pulumi.String("10m"),
		InstanceRefresh: &autoscaling.GroupInstanceRefreshArgs{
			Strategy: pulumi.String("Rolling"),
			Preferences: &autoscaling.GroupInstanceRefreshPreferencesArgs{
				MinHealthyPercentage: pulumi.Int(a.MinHealthyPercentage),
				SkipMatching:         pulumi.Bool(true),
				InstanceWarmup:       pulumi.String("60"),
				AutoRollback:         pulumi.Bool(true),
			},
		},
		EnabledMetrics: pulumi.ToStringArray([]string{"GroupInServiceInstances", "GroupDesiredCapacity"}),
		Tags: autoscaling.GroupTagArray{
			autoscaling.GroupTagArgs{Key: pulumi.String("Name"), Value: pulumi.String(name), PropagateAtLaunch: pulumi.Bool(true)},
		},
	}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: auto scaling group %s: %w", name, err)
	}
	if _, err := autoscaling.NewPolicy(ctx, name+"-cpu", &autoscaling.PolicyArgs{
		AutoscalingGroupName: g.Name,
		PolicyType:           pulumi.String("TargetTrackingScaling"),
		TargetTrackingConfiguration: &autoscaling.PolicyTargetTrackingConfigurationArgs{
			PredefinedMetricSpecification: &autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs{
				PredefinedMetricType: pulumi.String("ASGAverageCPUUtilization"),
			},
			TargetValue: pulumi.Float64(float64(a.CPUTargetPercent)),
		},
	}, pulumi.Parent(g)); err != nil {
		return nil, fmt.Errorf("compute: scaling policy %s: %w", name, err)
	}
	return g, nil
}
