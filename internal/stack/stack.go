// Package stack is the webstack Pulumi program: it loads the stack's
// configuration and the build to deploy, and composes the tiers in the
// order of the architecture: network → security → database → the api's
// secrets → the release → compute → edge protection → operations (alarms,
// dashboard, logs, budget, backups). main.go runs it; the offline tools
// (internal/cmd/offline) run it under mocks.
package stack

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/compute"
	"webstack/database"
	"webstack/internal/artifact"
	"webstack/internal/config"
	"webstack/network"
	"webstack/ops"
	"webstack/security"
)

// Run builds the stack and exports its outputs: the Pulumi program.
func Run(ctx *pulumi.Context) error {
	outputs, err := Compose(ctx)
	if err != nil {
		return err
	}
	for k, v := range outputs {
		ctx.Export(k, v)
	}
	return nil
}

// Compose builds the stack in the order of the architecture, passing each
// tier's outputs to the next, and returns the stack's outputs.
func Compose(ctx *pulumi.Context) (pulumi.Map, error) {
	cfg, err := config.FromPulumi(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		_ = ctx.Log.Warn(w, nil)
	}
	// A certificate or secret of another account fails late in up: the
	// caller's account is known before any resource (the default
	// provider's invoke).
	if len(cfg.Accounts()) > 0 {
		caller, err := aws.GetCallerIdentity(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("the deploying account: %w", err)
		}
		if err := cfg.CheckAccount(caller.AccountId); err != nil {
			return nil, err
		}
	}
	// The api's pool is what the database class takes from the api's
	// largest group: known before any resource, so a stack that would run
	// out of connections fails here.
	budget, err := Budget(cfg)
	if err != nil {
		return nil, err
	}
	build, err := artifact.Open(cfg.ArtifactPath)
	if err != nil {
		return nil, err
	}
	ha := cfg.Topology == config.HA

	tags := &aws.ProviderDefaultTagsArgs{Tags: pulumi.StringMap{
		"Project":   pulumi.String(cfg.Project),
		"Stack":     pulumi.String(cfg.Stack),
		"ManagedBy": pulumi.String("pulumi"),
		"Owner":     pulumi.String(cfg.Owner),
	}}
	provider, err := aws.NewProvider(ctx, "aws", &aws.ProviderArgs{Region: pulumi.String(cfg.Region), DefaultTags: tags})
	if err != nil {
		return nil, fmt.Errorf("aws provider: %w", err)
	}
	withAWS := pulumi.Providers(provider)

	net, err := network.NewVPC(ctx, "network", &network.VPCArgs{
		CIDR:                 cfg.Network.CIDR,
		AvailabilityZones:    cfg.Network.AvailabilityZones,
		AZCount:              cfg.Network.AZCount,
		NATStrategy:          cfg.Network.NATStrategy,
		FlowLogRetentionDays: cfg.Network.FlowLogRetentionDays,
		Region:               cfg.Region,
		InstanceTypes:        []string{cfg.Web.InstanceType, cfg.API.InstanceType},
	}, withAWS)
	if err != nil {
		return nil, err
	}

	var lbSec *security.LoadBalancerArgs
	if ha {
		lbSec = &security.LoadBalancerArgs{PublicHTTPS: cfg.HTTPS()}
	}
	sec, err := security.New(ctx, "security", &security.Args{
		VpcID:            net.VpcID,
		WebPort:          cfg.Web.Port,
		APIPort:          cfg.API.Port,
		DatabasePort:     database.Port,
		LoadBalancer:     lbSec,
		WebTLSSecretArn:  cfg.Edge.WebTLSSecretArn,
		HTTPIngressCIDRs: cfg.Edge.HTTPIngressCIDRs,
	}, withAWS)
	if err != nil {
		return nil, err
	}

	db, err := database.NewCluster(ctx, "database", &database.ClusterArgs{
		SubnetIDs:           net.IsolatedSubnetIDs,
		AvailabilityZones:   net.AvailabilityZones,
		SecurityGroupID:     sec.DatabaseSecurityGroupID,
		InstanceClass:       cfg.Database.InstanceClass,
		InstanceCount:       cfg.Database.InstanceCount,
		BackupRetentionDays: cfg.Database.BackupRetentionDays,
		BackupWindow:        cfg.Database.BackupWindow,
		MaintenanceWindow:   cfg.Database.MaintenanceWindow,
		Audit:               cfg.Database.Audit,
		LogExports:          cfg.Database.LogExports,
		DeletionProtection:  cfg.Database.DeletionProtection,
		SkipFinalSnapshot:   cfg.Database.SkipFinalSnapshot,
		DeferChanges:        !cfg.Database.ApplyImmediately,
		LogRetentionDays:    cfg.Ops.LogRetentionDays,
	}, withAWS)
	if err != nil {
		return nil, err
	}

	appSecrets, err := security.NewSecrets(ctx, "secrets", &security.SecretsArgs{
		JWTSecret:         cfg.JWTSecret,
		DatabaseSecretArn: db.SecretArn,
		APIRole:           sec.APIRole,
	}, withAWS)
	if err != nil {
		return nil, err
	}

	release, err := compute.NewRelease(ctx, "release", &compute.ReleaseArgs{
		ArtifactPath: build.Path,
		SHA256:       build.SHA256,
		Key:          build.Key(),
		Readers:      []compute.Reader{{Tier: "web", Role: sec.WebRole}, {Tier: "api", Role: sec.APIRole}},
	}, withAWS)
	if err != nil {
		return nil, err
	}

	names := ops.NamesFor(cfg.Project, cfg.Stack)
	var lb *compute.LoadBalancerArgs
	if ha {
		lb = &compute.LoadBalancerArgs{
			VpcID:                   net.VpcID,
			PublicSecurityGroupID:   sec.LoadBalancers.PublicSecurityGroupID,
			InternalSecurityGroupID: sec.LoadBalancers.InternalSecurityGroupID,
			CertificateArn:          cfg.Edge.CertificateArn,
			AllowHTTP:               cfg.Edge.AllowHTTP,
			DesyncMitigationMode:    cfg.Edge.DesyncMitigationMode,
			DeletionProtection:      cfg.Edge.ALBDeletionProtection,
			AccessLogs:              cfg.Edge.ALBAccessLogs,
			MinHealthyPercentage:    cfg.MinHealthyPercentage,
			MaxHealthyPercentage:    cfg.MaxHealthyPercentage,
			CPUTargetPercent:        cfg.CPUTargetPercent,
			RefreshAlarms:           map[string][]string{"web": names.RefreshAlarms("web"), "api": names.RefreshAlarms("api")},
		}
	}
	app, err := compute.NewApp(ctx, "app", &compute.AppArgs{
		PublicSubnetIDs:  net.PublicSubnetIDs,
		PrivateSubnetIDs: net.PrivateSubnetIDs,
		VpcCIDR:          cfg.Network.CIDR,
		Web: compute.TierArgs{
			InstanceType: cfg.Web.InstanceType, Port: cfg.Web.Port, MinSize: cfg.Web.MinSize, MaxSize: cfg.Web.MaxSize,
			SecurityGroupID: sec.WebSecurityGroupID, InstanceProfileName: sec.WebInstanceProfile.Name,
			BootDependsOn: grants(sec.WebTLSGrant),
		},
		API: compute.TierArgs{
			InstanceType: cfg.API.InstanceType, Port: cfg.API.Port, MinSize: cfg.API.MinSize, MaxSize: cfg.API.MaxSize,
			SecurityGroupID: sec.APISecurityGroupID, InstanceProfileName: sec.APIInstanceProfile.Name,
			BootDependsOn: append([]pulumi.Resource{appSecrets.Grant}, db.Instances...),
		},
		Release:         release,
		Region:          cfg.Region,
		DBHost:          db.Endpoint,
		DBPort:          db.Port,
		DBSecretArn:     db.SecretArn,
		DBMaxPool:       budget.Pool,
		JWTSecretArn:    appSecrets.JWTSecretArn,
		WebTLSSecretArn: cfg.Edge.WebTLSSecretArn,
		RootVolumeGiB:   cfg.RootVolumeGiB,
		CostTags:        map[string]string{"Project": cfg.Project, "Stack": cfg.Stack, "Owner": cfg.Owner},
		AMIID:           cfg.AMIID,
		LoadBalancer:    lb,
		Telemetry: &compute.Telemetry{
			WebLogGroup: names.WebLogGroup, APILogGroup: names.APILogGroup, Namespace: names.Namespace,
		},
	}, withAWS)
	if err != nil {
		return nil, err
	}

	edgeArgs := &security.EdgeArgs{ResourceArn: app.EntryPointArn, ShieldAdvanced: cfg.Edge.ShieldAdvanced}
	if ha {
		edgeArgs.WebACL = &security.WebACLArgs{
			Mode: cfg.Edge.WAFMode, RateLimit: cfg.Edge.WAFRateLimit, LoginRateLimit: cfg.Edge.WAFLoginRateLimit, LogRetentionDays: cfg.Edge.WAFLogRetentionDays,
			// Stacks deployed before the edge was one component made the
			// web ACL inside the security tier: the same name, and an alias
			// to that parent, keep it (and its log group) from being
			// replaced (testdata/urns holds every URN).
			Name: "security-waf", Aliases: []pulumi.Alias{{Parent: sec}},
		}
	}
	edge, err := security.NewEdge(ctx, "edge", edgeArgs, withAWS)
	if err != nil {
		return nil, err
	}

	watch, err := monitoringArgs(ctx, cfg, budget, names, tags, net, sec, db, app, edge)
	if err != nil {
		return nil, err
	}
	monitoring, err := ops.NewMonitoring(ctx, "ops", watch, withAWS)
	if err != nil {
		return nil, err
	}

	return stackOutputs(cfg, net, db, appSecrets, release, app, edge, monitoring), nil
}

// monitoringArgs is what the operations tier watches: the tiers as the
// topology built them (instances, or load balancers and groups), the database,
// the NAT gateways, the web ACL, the budget and AWS Backup.
func monitoringArgs(ctx *pulumi.Context, cfg *config.Config, budget ConnectionBudget, names ops.Names, tags *aws.ProviderDefaultTagsArgs,
	net *network.VPC, sec *security.Security, db *database.Cluster, app *compute.App, edge *security.Edge) (*ops.MonitoringArgs, error) {
	var err error
	watch := &ops.MonitoringArgs{
		Names: names, Region: cfg.Region, AlarmEmail: cfg.Ops.AlarmEmail,
		LogRetentionDays: cfg.Ops.LogRetentionDays, Thresholds: cfg.Ops.Thresholds,
		Shippers: map[string]pulumi.StringInput{"web": sec.WebRole.Name, "api": sec.APIRole.Name},
		Database: ops.Database{
			ClusterID: db.ClusterID, ClusterArn: db.ClusterArn, InstanceIDs: db.InstanceIDs, InstanceClass: db.InstanceClass,
			ConnectionLimit: budget.Limits.Connections, PlannedConnections: budget.Peak(),
		},
		NATGatewayIDs: net.NATGatewayIDs,
	}
	if i := app.Instances; i != nil {
		watch.Instances = []ops.Instance{
			{Tier: "web", ID: i.WebID, InstanceType: cfg.Web.InstanceType},
			{Tier: "api", ID: i.APIID, InstanceType: cfg.API.InstanceType},
		}
	}
	if g := app.Groups; g != nil {
		watch.LoadBalancer = &ops.LoadBalancer{
			Public: g.PublicALB, Internal: g.InternalALB,
			Targets: []ops.TargetGroup{
				{Tier: "web", ArnSuffix: g.WebTargetGroup, LoadBalancer: g.PublicALB, MinHealthy: cfg.Web.MinSize},
				{Tier: "api", ArnSuffix: g.APITargetGroup, LoadBalancer: g.InternalALB, MinHealthy: cfg.API.MinSize},
			},
			Groups: []ops.Group{
				{Tier: "web", Name: g.WebName, Min: cfg.Web.MinSize, InstanceType: cfg.Web.InstanceType},
				{Tier: "api", Name: g.APIName, Min: cfg.API.MinSize, InstanceType: cfg.API.InstanceType},
			},
		}
		watch.Backup = &ops.Backup{RetentionDays: cfg.Ops.BackupRetentionDays}
		if region := cfg.Ops.BackupCopyRegion; region != "" {
			if watch.Backup.CopyTo, err = aws.NewProvider(ctx, "aws-backup-copy", &aws.ProviderArgs{Region: pulumi.String(region), DefaultTags: tags}); err != nil {
				return nil, fmt.Errorf("backup copy provider: %w", err)
			}
		}
	}
	if edge.HasWebACL {
		watch.WebACL = &ops.WebACL{Name: edge.WebACLName, Count: cfg.Edge.WAFMode == "count"}
	}
	if estimate := cfg.Ops.BudgetEstimateUSD; estimate > 0 {
		// The budget is the stack file's estimate (what `make cost` prints
		// for it; `make diagrams` writes it there, a test says when it is
		// stale) times budgetPercent.
		watch.Budget = &ops.Budget{EstimateUSD: estimate, LimitUSD: estimate * float64(cfg.Ops.BudgetPercent) / 100}
	}
	return watch, nil
}

// stackOutputs are what `pulumi stack output` shows: the address, the
// network, the database, the secrets, the release, the operations.
func stackOutputs(cfg *config.Config, net *network.VPC, db *database.Cluster, appSecrets *security.Secrets, release *compute.Release,
	app *compute.App, edge *security.Edge, monitoring *ops.Monitoring) pulumi.Map {
	url := app.URL
	if cfg.Edge.Hostname != "" {
		scheme := "https"
		if !cfg.HTTPS() { // allowHttp without a certificate: the site is plain HTTP
			scheme = "http"
		}
		url = pulumi.Sprintf("%s://%s", scheme, cfg.Edge.Hostname).ToStringOutput()
	}
	outputs := pulumi.Map{
		"url":               url,
		"entryAddress":      app.EntryAddress,
		"vpcId":             net.VpcID,
		"publicSubnetIds":   net.PublicSubnetIDs,
		"privateSubnetIds":  net.PrivateSubnetIDs,
		"isolatedSubnetIds": net.IsolatedSubnetIDs,
		"dbEndpoint":        db.Endpoint,
		"dbReaderEndpoint":  db.ReaderEndpoint,
		"dbPort":            db.Port,
		"dbSecretArn":       db.SecretArn,
		"jwtSecretArn":      appSecrets.JWTSecretArn,
		"artifactBucket":    release.Bucket,
		"artifactKey":       pulumi.String(release.Key),
		"artifactSha256":    pulumi.String(release.SHA256),
		"amiId":             app.AMIID,
		"alarmTopicArn":     monitoring.TopicArn,
		"dashboardName":     monitoring.DashboardName,
	}
	if edge.HasWebACL {
		outputs["webAclArn"] = edge.WebACLArn
	}
	if g := app.Groups; g != nil {
		outputs["webAsgName"] = g.WebName
		outputs["apiAsgName"] = g.APIName
	}
	if i := app.Instances; i != nil {
		outputs["webInstanceId"] = i.WebID
		outputs["apiInstanceId"] = i.APIID
	}
	return outputs
}

// grants are the resources given, leaving out the absent (nil) ones.
func grants(rs ...pulumi.Resource) []pulumi.Resource {
	var out []pulumi.Resource
	for _, r := range rs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}
