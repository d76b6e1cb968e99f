// Package database provides the webstack DocumentDB cluster: encrypted,
// TLS-only, audited, with its master password managed by AWS in Secrets
// Manager, on the isolated subnets.
package database

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/docdb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
)

// Port is the port the cluster listens on: DocumentDB's default, which the
// cluster keeps (it sets no port). The security groups open it and the api
// is told it (CONDUIT_DB_PORT, from the cluster's port output).
const Port = 27017

// ClusterArgs configures NewCluster.
type ClusterArgs struct {
	// SubnetIDs are the isolated subnets, in at least two AZs. Required.
	SubnetIDs pulumi.StringArrayInput
	// AvailabilityZones spread the instances (instance i goes to zone i mod n).
	// Required, at least 1.
	AvailabilityZones []string
	// SecurityGroupID is the database's security group. Required.
	SecurityGroupID pulumi.StringInput
	// InstanceClass of every instance. Defaults to db.r6g.large (the config table's dbInstanceClass).
	InstanceClass string
	// InstanceCount is the number of instances (one writer, the rest
	// readers). Defaults to 3 (the config table's dbInstanceCount).
	InstanceCount int
	// BackupRetentionDays, 7 to 35. Defaults to 14 (the config table's dbBackupRetentionDays).
	BackupRetentionDays int
	// BackupWindow is the daily backup window, UTC. Defaults to 03:00-04:00 (the config table's dbBackupWindow).
	BackupWindow string
	// MaintenanceWindow is the weekly maintenance window, UTC. Defaults to
	// sun:04:30-sun:05:30 (the config table's dbMaintenanceWindow).
	MaintenanceWindow string
	// Audit turns on the audit_logs cluster parameter. Defaults to false.
	Audit bool
	// LogExports are the log types sent to CloudWatch Logs ("audit", "profiler"). Defaults to none.
	LogExports []string
	// DeletionProtection refuses deletion of the cluster. Defaults to false.
	DeletionProtection bool
	// SkipFinalSnapshot deletes the cluster without a final snapshot (dev
	// only). Defaults to false: a final snapshot is taken.
	SkipFinalSnapshot bool
	// DeferChanges leaves changes DocumentDB applies on its own schedule
	// (instance class, parameters) for the maintenance window; `pulumi
	// refresh` then shows them pending until it. Defaults to false: they
	// apply during `pulumi up` (applyImmediately), so what up reports is
	// what runs.
	DeferChanges bool
	// LogRetentionDays keeps the cluster's exported logs (the log groups
	// DocumentDB would otherwise make itself, kept forever and left behind
	// by destroy). Defaults to 30 (the config table's logRetentionDays).
	LogRetentionDays int
}

// Cluster is the database tier.
type Cluster struct {
	pulumi.ResourceState

	// Endpoint is the writer endpoint.
	Endpoint pulumi.StringOutput
	// ReaderEndpoint balances across the replicas.
	ReaderEndpoint pulumi.StringOutput
	// Port is DocumentDB's port.
	Port pulumi.IntOutput
	// SecretArn is the Secrets Manager secret holding the master credentials,
	// created and rotated by DocumentDB (manageMasterUserPassword).
	SecretArn pulumi.StringOutput
	// Instances are the cluster's instances: an api that boots before they
	// exist cannot connect.
	Instances []pulumi.Resource
	// ClusterID and InstanceIDs are the identifiers CloudWatch dimensions
	// DocumentDB's metrics by; InstanceClass is the instances' class.
	ClusterID     pulumi.StringOutput
	ClusterArn    pulumi.StringOutput
	InstanceIDs   []pulumi.StringOutput
	InstanceClass string
}

// NewCluster creates the database tier.
func NewCluster(ctx *pulumi.Context, name string, args *ClusterArgs, opts ...pulumi.ResourceOption) (*Cluster, error) {
	c := &Cluster{}
	if err := ctx.RegisterComponentResource("webstack:database:Cluster", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	if a.InstanceClass == "" {
		a.InstanceClass = config.Default[string]("dbInstanceClass")
	}
	if a.InstanceCount == 0 {
		a.InstanceCount = config.Default[int]("dbInstanceCount")
	}
	if a.BackupRetentionDays == 0 {
		a.BackupRetentionDays = config.Default[int]("dbBackupRetentionDays")
	}
	if a.BackupWindow == "" {
		a.BackupWindow = config.Default[string]("dbBackupWindow")
	}
	if a.MaintenanceWindow == "" {
		a.MaintenanceWindow = config.Default[string]("dbMaintenanceWindow")
	}
	if a.LogRetentionDays == 0 {
		a.LogRetentionDays = config.Default[int]("logRetentionDays")
	}
	if len(a.AvailabilityZones) == 0 || a.SubnetIDs == nil || a.SecurityGroupID == nil {
		return nil, fmt.Errorf("database: AvailabilityZones, SubnetIDs and SecurityGroupID are required")
	}
	parent := pulumi.Parent(c)
	tags := func(n string) pulumi.StringMap { return pulumi.StringMap{"Name": pulumi.String(n)} }

	subnets, err := docdb.NewSubnetGroup(ctx, name, &docdb.SubnetGroupArgs{
		Description: pulumi.String("webstack DocumentDB, isolated subnets"),
		SubnetIds:   a.SubnetIDs,
		Tags:        tags(name),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database: subnet group: %w", err)
	}

	onOff := func(b bool) pulumi.String {
		if b {
			return "enabled"
		}
		return "disabled"
	}
	params, err := docdb.NewClusterParameterGroup(ctx, name, &docdb.ClusterParameterGroupArgs{
		Family:      pulumi.String("docdb5.0"),
		Description: pulumi.String("webstack: TLS required, audit and profiler as configured"),
		Parameters: docdb.ClusterParameterGroupParameterArray{
			docdb.ClusterParameterGroupParameterArgs{Name: pulumi.String("tls"), Value: pulumi.String("enabled"), ApplyMethod: pulumi.String("pending-reboot")},
			docdb.ClusterParameterGroupParameterArgs{Name: pulumi.String("audit_logs"), Value: onOff(a.Audit), ApplyMethod: pulumi.String("immediate")},
			docdb.ClusterParameterGroupParameterArgs{Name: pulumi.String("profiler"), Value: onOff(slices.Contains(a.LogExports, "profiler")), ApplyMethod: pulumi.String("immediate")},
			// The query planner: 2.0, not 5.0's default 1.0. Planner v2 (Amazon
			// DocumentDB developer guide, "Query planner v2"; engine patch
			// 3.0.15902 or later, which a 5.0.0 cluster takes in its
			// maintenance window) uses an index for $in on a compound index's
			// first key, "eliminating the sort stage": the feed ({authorId:
			// {$in}} sorted on list_by_author's createdAt, _id). Whether it does
			// so for the feed's up to 1,000 authors is to be checked with
			// explain() on a real cluster (docs/app.md, open). The parameter is
			// dynamic (applied at once, no reboot); AWS warns of "increased
			// error rates if the planner version is changed when workloads are
			// actively running", so on a cluster made before this, apply it in
			// a quiet hour (docs/deploy.md). Description is not changed with
			// it: a new description replaces the parameter group.
			docdb.ClusterParameterGroupParameterArgs{Name: pulumi.String("planner_version"), Value: pulumi.String(PlannerVersion), ApplyMethod: pulumi.String("immediate")},
		},
		Tags: tags(name),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database: parameter group: %w", err)
	}

	// The cluster's identifier is set, not left to auto-naming, so that
	// what is named after it exists before it: the log groups of its
	// exports (DocumentDB makes them otherwise, kept forever) and its final
	// snapshot's name. It carries a digest of every input that makes the
	// provider replace the cluster (terraform-provider-aws, docdb
	// cluster.go: ForceNew on engine, master_username, storage_encrypted,
	// port, db_subnet_group_name, …), so a replacement is a new identifier
	// and a new snapshot name, and a destroyed and re-created stack never
	// meets its previous snapshot (the subnet group's name is new).
	identifier := subnets.Name.ApplyT(func(group string) string {
		return ClusterIdentifier(ctx.Project(), ctx.Stack(), name, "docdb", "conduit", "encrypted", strconv.Itoa(Port), group)
	}).(pulumi.StringOutput)
	var logGroups []pulumi.Resource
	for _, kind := range a.LogExports {
		lg, err := cloudwatch.NewLogGroup(ctx, name+"-"+kind, &cloudwatch.LogGroupArgs{
			Name:            pulumi.Sprintf("/aws/docdb/%s/%s", identifier, kind),
			RetentionInDays: pulumi.Int(a.LogRetentionDays),
			Tags:            tags(name + "-" + kind),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("database: %s log group: %w", kind, err)
		}
		logGroups = append(logGroups, lg)
	}
	clusterArgs := &docdb.ClusterArgs{
		ClusterIdentifier:            identifier,
		Engine:                       pulumi.String("docdb"),
		EngineVersion:                pulumi.String("5.0.0"),
		DbSubnetGroupName:            subnets.Name,
		DbClusterParameterGroupName:  params.Name,
		VpcSecurityGroupIds:          pulumi.StringArray{a.SecurityGroupID},
		MasterUsername:               pulumi.String("conduit"),
		ManageMasterUserPassword:     pulumi.Bool(true),
		StorageEncrypted:             pulumi.Bool(true),
		BackupRetentionPeriod:        pulumi.Int(a.BackupRetentionDays),
		PreferredBackupWindow:        pulumi.String(a.BackupWindow),
		PreferredMaintenanceWindow:   pulumi.String(a.MaintenanceWindow),
		DeletionProtection:           pulumi.Bool(a.DeletionProtection),
		SkipFinalSnapshot:            pulumi.Bool(a.SkipFinalSnapshot),
		ApplyImmediately:             pulumi.Bool(!a.DeferChanges),
		EnabledCloudwatchLogsExports: pulumi.ToStringArray(a.LogExports),
		// Each cluster's own: see identifier. Set even when
		// SkipFinalSnapshot is true, so that turning snapshots on later
		// finds a name.
		FinalSnapshotIdentifier: pulumi.Sprintf("%s-final", identifier),
		Tags:                    tags(name),
		// AvailabilityZones is deliberately not set: the API returns more
		// zones than given, and the provider then replaces the cluster on
		// every run. Instances are placed explicitly below instead.
	}
	cluster, err := docdb.NewCluster(ctx, name, clusterArgs, parent, pulumi.DependsOn(logGroups))
	if err != nil {
		return nil, fmt.Errorf("database: cluster: %w", err)
	}

	for i := range a.InstanceCount {
		n := fmt.Sprintf("%s-%d", name, i+1)
		inst, err := docdb.NewClusterInstance(ctx, n, &docdb.ClusterInstanceArgs{
			ClusterIdentifier:       cluster.ID(),
			InstanceClass:           pulumi.String(a.InstanceClass),
			AvailabilityZone:        pulumi.String(a.AvailabilityZones[i%len(a.AvailabilityZones)]),
			PromotionTier:           pulumi.Int(i),
			AutoMinorVersionUpgrade: pulumi.Bool(true),
			CaCertIdentifier:        pulumi.String("rds-ca-rsa2048-g1"),
			ApplyImmediately:        pulumi.Bool(!a.DeferChanges),
			Tags:                    tags(n),
		}, pulumi.Parent(cluster))
		if err != nil {
			return nil, fmt.Errorf("database: instance %d: %w", i+1, err)
		}
		c.Instances = append(c.Instances, inst)
		c.InstanceIDs = append(c.InstanceIDs, inst.ID().ToStringOutput())
	}
	c.ClusterID = cluster.ID().ToStringOutput()
	c.ClusterArn = cluster.Arn
	c.InstanceClass = a.InstanceClass

	c.Endpoint = cluster.Endpoint
	c.ReaderEndpoint = cluster.ReaderEndpoint
	c.Port = cluster.Port.ApplyT(func(p *int) int {
		if p == nil {
			return Port
		}
		return *p
	}).(pulumi.IntOutput)
	c.SecretArn = cluster.MasterUserSecrets.ApplyT(func(s []docdb.ClusterMasterUserSecret) string {
		if len(s) == 0 || s[0].SecretArn == nil {
			return ""
		}
		return *s[0].SecretArn
	}).(pulumi.StringOutput)

	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"endpoint":       c.Endpoint,
		"readerEndpoint": c.ReaderEndpoint,
		"port":           c.Port,
		"secretArn":      c.SecretArn,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// ClusterIdentifier is "<project>-<stack>-<name>-<8 hex digits>": the
// digits are a digest of generation (the inputs that make a new cluster),
// and the rest is made valid for DocumentDB (letters, digits and single
// hyphens, starting with a letter, at most 63 characters).
func ClusterIdentifier(project, stack, name string, generation ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(generation, "\x00")))
	suffix := "-" + hex.EncodeToString(sum[:4])
	raw := fmt.Sprintf("%s-%s-%s", project, stack, name)
	var b strings.Builder
	for _, r := range strings.ToLower(raw) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-")
	if id == "" || id[0] < 'a' || id[0] > 'z' {
		id = "db-" + id
	}
	if len(id) > 63-len(suffix) {
		id = strings.TrimRight(id[:63-len(suffix)], "-")
	}
	return id + suffix
}
