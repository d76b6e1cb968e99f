package compute

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/bucket"
	"webstack/internal/config"
)

// TLSPolicy is the public HTTPS listener's policy: TLS 1.3 and 1.2 only.
const TLSPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// LoadBalancerArgs configures the ha topology.
type LoadBalancerArgs struct {
	// VpcID of the target groups. Required.
	VpcID pulumi.StringInput
	// PublicSecurityGroupID and InternalSecurityGroupID are the load
	// balancers' groups. Required.
	PublicSecurityGroupID, InternalSecurityGroupID pulumi.StringInput
	// CertificateArn of the HTTPS listener. Defaults to "" (no HTTPS
	// listener): then AllowHTTP must be true.
	CertificateArn string
	// AllowHTTP forwards plain HTTP when there is no certificate (explicit
	// opt-out). Defaults to false: port 80 only redirects to HTTPS.
	AllowHTTP bool
	// DesyncMitigationMode of both ALBs: "defensive" or "strictest".
	// Defaults to defensive (the config table's desyncMitigationMode).
	DesyncMitigationMode string
	// DeletionProtection on the public ALB. Defaults to false.
	DeletionProtection bool
	// AccessLogs sends the public ALB's access logs to a new private S3 bucket. Defaults to false.
	AccessLogs bool
	// MinHealthyPercentage and MaxHealthyPercentage bound an instance
	// refresh; above 100 the maximum launches replacements before old
	// instances terminate. Default to 100 and 200 (the config table's
	// minHealthyPercentage and maxHealthyPercentage).
	MinHealthyPercentage, MaxHealthyPercentage int
	// CPUTargetPercent is the target tracking goal of both groups.
	// Defaults to 50 (the config table's cpuTargetPercent).
	CPUTargetPercent int
	// RefreshAlarms name, by tier ("web", "api"), the CloudWatch alarms
	// that fail an instance refresh while it runs: Auto Scaling then rolls
	// the group back to its previous launch template (AutoRollback), and
	// the refresh ends Failed or RollbackSuccessful for the post-deploy
	// check to report (scripts/check-refresh.sh). The provider starts a
	// refresh and returns: without alarms, a refresh whose new instances
	// never get healthy is noticed by no one. Defaults to none.
	RefreshAlarms map[string][]string
}

// refreshAlarms is the alarm specification of a refresh (nil: none).
func refreshAlarms(names []string) autoscaling.GroupInstanceRefreshPreferencesAlarmSpecificationPtrInput {
	if len(names) == 0 {
		return nil
	}
	return &autoscaling.GroupInstanceRefreshPreferencesAlarmSpecificationArgs{Alarms: pulumi.ToStringArray(names)}
}

// cluster builds the ha topology: public ALB → web ASG → internal
// ALB → api ASG.
func (c *App) cluster(ctx *pulumi.Context, name string, a *AppArgs, ami string) error {
	la := *a.LoadBalancer
	if la.DesyncMitigationMode == "" {
		la.DesyncMitigationMode = config.Default[string]("desyncMitigationMode")
	}
	if la.MinHealthyPercentage == 0 {
		la.MinHealthyPercentage = config.Default[int]("minHealthyPercentage")
	}
	if la.MaxHealthyPercentage == 0 {
		la.MaxHealthyPercentage = config.Default[int]("maxHealthyPercentage")
	}
	if la.CPUTargetPercent == 0 {
		la.CPUTargetPercent = config.Default[int]("cpuTargetPercent")
	}
	if la.VpcID == nil || la.PublicSecurityGroupID == nil || la.InternalSecurityGroupID == nil {
		return fmt.Errorf("compute: LoadBalancer needs VpcID, PublicSecurityGroupID and InternalSecurityGroupID")
	}
	if la.CertificateArn == "" && !la.AllowHTTP {
		return fmt.Errorf("compute: the public ALB needs CertificateArn, or AllowHTTP set explicitly")
	}
	publicALB, err := c.loadBalancer(ctx, name+"-public", &la, false, la.PublicSecurityGroupID, a.PublicSubnetIDs)
	if err != nil {
		return err
	}
	internalALB, err := c.loadBalancer(ctx, name+"-internal", &la, true, la.InternalSecurityGroupID, a.PrivateSubnetIDs)
	if err != nil {
		return err
	}

	webTG, err := c.targetGroup(ctx, name+"-web", la.VpcID, a.Web.Port)
	if err != nil {
		return err
	}
	apiTG, err := c.targetGroup(ctx, name+"-api", la.VpcID, a.API.Port)
	if err != nil {
		return err
	}

	forward := func(tg *lb.TargetGroup) lb.ListenerDefaultActionArray {
		return lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"), TargetGroupArn: tg.Arn}}
	}
	https := la.CertificateArn != ""
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
			CertificateArn:  pulumi.String(la.CertificateArn),
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

	internalURL := pulumi.Sprintf("http://%s:%d", internalALB.DnsName, a.API.Port)
	apiLT, err := c.launchTemplate(ctx, name+"-api", ami, a, &a.API, c.apiUserData(a))
	if err != nil {
		return err
	}
	webLT, err := c.launchTemplate(ctx, name+"-web", ami, a, &a.Web, c.webUserData(a, internalURL))
	if err != nil {
		return err
	}
	web, err := c.group(ctx, name+"-web", a, &la, "web", &a.Web, webLT, webTG)
	if err != nil {
		return err
	}
	api, err := c.group(ctx, name+"-api", a, &la, "api", &a.API, apiLT, apiTG)
	if err != nil {
		return err
	}

	c.Groups = &Groups{WebName: web.Name, APIName: api.Name, InternalURL: internalURL,
		PublicALB: publicALB.ArnSuffix, InternalALB: internalALB.ArnSuffix, WebTargetGroup: webTG.ArnSuffix, APITargetGroup: apiTG.ArnSuffix}
	c.EntryPointArn = publicALB.Arn
	scheme := "http"
	if https {
		scheme = "https"
	}
	c.URL = pulumi.Sprintf("%s://%s", scheme, publicALB.DnsName)
	c.EntryAddress = publicALB.DnsName
	return nil
}

// loadBalancer creates an ALB that drops invalid headers and mitigates HTTP
// desync; the public one optionally keeps access logs and refuses deletion.
func (c *App) loadBalancer(ctx *pulumi.Context, name string, a *LoadBalancerArgs, internal bool, sg pulumi.StringInput, subnets pulumi.StringArrayInput) (*lb.LoadBalancer, error) {
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
	opts := []pulumi.ResourceOption{pulumi.Parent(c)}
	if !internal {
		args.EnableDeletionProtection = pulumi.Bool(a.DeletionProtection)
		if a.AccessLogs {
			logs, err := c.accessLogBucket(ctx, name+"-logs")
			if err != nil {
				return nil, err
			}
			args.AccessLogs = &lb.LoadBalancerAccessLogsArgs{Bucket: logs.Name, Enabled: pulumi.Bool(true), Prefix: pulumi.String(name)}
			// ELB checks its write access when logging is turned on: the
			// grant must be in place first ("Access Denied for bucket").
			opts = append(opts, pulumi.DependsOn([]pulumi.Resource{logs.Policy}))
		}
	}
	alb, err := lb.NewLoadBalancer(ctx, name, args, opts...)
	if err != nil {
		return nil, fmt.Errorf("compute: load balancer %s: %w", name, err)
	}
	return alb, nil
}

// accessLogBucket is a private bucket that the region's Elastic Load
// Balancing account may write access logs to, kept 90 days. It is
// forceDestroy: the logs expire anyway, and `pulumi destroy` must not stop
// at a bucket someone has to empty by hand. Destroy deletes the ALB, then
// the bucket policy that lets ELB write (the ALB depends on it), then the
// bucket: nothing is delivered while it is emptied.
func (c *App) accessLogBucket(ctx *pulumi.Context, name string) (*bucket.Private, error) {
	elbAccount, err := elb.GetServiceAccount(ctx, nil, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: ELB service account: %w", err)
	}
	return bucket.NewPrivate(ctx, name, &bucket.PrivateArgs{
		ExpireDays:   90,
		ForceDestroy: true,
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
func (c *App) group(ctx *pulumi.Context, name string, a *AppArgs, lba *LoadBalancerArgs, tier string, t *TierArgs, lt *ec2.LaunchTemplate, tg *lb.TargetGroup) (*autoscaling.Group, error) {
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
				MinHealthyPercentage: pulumi.Int(lba.MinHealthyPercentage),
				MaxHealthyPercentage: pulumi.Int(lba.MaxHealthyPercentage),
				SkipMatching:         pulumi.Bool(true),
				InstanceWarmup:       pulumi.String("60"),
				AutoRollback:         pulumi.Bool(true),
				AlarmSpecification:   refreshAlarms(lba.RefreshAlarms[tier]),
			},
		},
		EnabledMetrics: pulumi.ToStringArray([]string{"GroupInServiceInstances", "GroupDesiredCapacity"}),
		Tags: autoscaling.GroupTagArray{
			autoscaling.GroupTagArgs{Key: pulumi.String("Name"), Value: pulumi.String(name), PropagateAtLaunch: pulumi.Bool(true)},
		},
	}, pulumi.Parent(c), c.bootDependsOn(a, tier, t))
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
			TargetValue: pulumi.Float64(float64(lba.CPUTargetPercent)),
		},
	}, pulumi.Parent(g)); err != nil {
		return nil, fmt.Errorf("compute: scaling policy %s: %w", name, err)
	}
	return g, nil
}
