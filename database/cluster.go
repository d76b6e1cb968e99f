// Package database provides the webstack DocumentDB cluster: encrypted,
// TLS-only, audited, with its master password managed by AWS in Secrets
// Manager, on the isolated subnets.
package database

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/docdb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
)

// ClusterArgs configures NewCluster.
type ClusterArgs struct {
	// SubnetIDs are the isolated subnets, in at least two AZs. Required.
	SubnetIDs pulumi.StringArrayInput
	// AvailabilityZones spread the instances (instance i goes to zone i mod n).
	// Required, at least 1.
	AvailabilityZones []string
	// SecurityGroupID is the database's security group. Required.
	SecurityGroupID pulumi.StringInput
	// InstanceClass of every instance. Defaults to the config table's dbInstanceClass.
	InstanceClass string
	// InstanceCount is the number of instances (one writer, the rest
	// readers). Defaults to the config table's dbInstanceCount.
	InstanceCount int
	// BackupRetentionDays, 7 to 35. Defaults to the config table's dbBackupRetentionDays.
	BackupRetentionDays int
	// BackupWindow is the daily backup window, UTC. Defaults to the config table's dbBackupWindow.
	BackupWindow string
	// MaintenanceWindow is the weekly maintenance window, UTC. Defaults to
	// the config table's dbMaintenanceWindow.
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
	// Now dates the final snapshot's name. Defaults to the time of the
	// run, or SOURCE_DATE_EPOCH when set (the offline plan sets it, so
	// that its output does not change from run to run).
	Now func() time.Time
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
	if a.Now == nil {
		a.Now = now
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
		},
		Tags: tags(name),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database: parameter group: %w", err)
	}

	clusterArgs := &docdb.ClusterArgs{
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
		EnabledCloudwatchLogsExports: pulumi.ToStringArray(a.LogExports),
		Tags:                         tags(name),
		// AvailabilityZones is deliberately not set: the API returns more
		// zones than given, and the provider then replaces the cluster on
		// every run. Instances are placed explicitly below instead.
	}
	// The final snapshot's name must be new each time a cluster is deleted
	// (a second delete, or a replacement, would otherwise collide with the
	// first snapshot): it is dated when the cluster is created and then
	// kept (ignoreChanges), so each cluster carries its own. It is set even
	// when SkipFinalSnapshot is true, so that turning snapshots on later
	// finds a name.
	clusterArgs.FinalSnapshotIdentifier = pulumi.String(FinalSnapshotIdentifier(ctx.Project(), ctx.Stack(), name, a.Now()))
	cluster, err := docdb.NewCluster(ctx, name, clusterArgs, parent, pulumi.IgnoreChanges([]string{"finalSnapshotIdentifier"}))
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
			return 27017
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

// FinalSnapshotIdentifier names the snapshot DocumentDB takes when the
// cluster is deleted: "<project>-<stack>-<name>-final-<UTC time>", made
// valid for any stack name (DocumentDB allows letters, digits and single
// hyphens, starting with a letter, at most 255 characters; stack names may
// also hold '_' and '.').
func FinalSnapshotIdentifier(project, stack, name string, at time.Time) string {
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
	suffix := "-final-" + at.UTC().Format("20060102150405")
	if len(id) > 255-len(suffix) {
		id = strings.TrimRight(id[:255-len(suffix)], "-")
	}
	return id + suffix
}

// now is the run's clock: SOURCE_DATE_EPOCH (seconds) when set, so that
// reproducible runs (the offline plan) give the same names.
func now() time.Time {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(sec, 0)
		}
	}
	return time.Now()
}
