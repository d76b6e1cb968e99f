package ops

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/backup"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/budgets"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// StackTagFilter is the cost filter that keeps one stack's spend: the
// provider's default tag Stack=<stack>. AWS counts it only once "Stack" is
// activated as a cost allocation tag (Billing → Cost allocation tags);
// until then the budget sees nothing (docs/deploy.md).
func StackTagFilter(stack string) string { return "user:Stack$" + stack }

// budget is the stack's monthly cost budget: alerts at 80 % of the limit
// spent and at 100 % forecast, to the topic.
func (c *Monitoring) budget(ctx *pulumi.Context, name string, a *MonitoringArgs, topic pulumi.StringOutput) error {
	stack := ctx.Stack()
	notify := func(kind string, pct float64) budgets.BudgetNotificationArgs {
		return budgets.BudgetNotificationArgs{
			ComparisonOperator: pulumi.String("GREATER_THAN"), NotificationType: pulumi.String(kind),
			Threshold: pulumi.Float64(pct), ThresholdType: pulumi.String("PERCENTAGE"),
			SubscriberSnsTopicArns: pulumi.StringArray{topic},
		}
	}
	if _, err := budgets.NewBudget(ctx, name+"-budget", &budgets.BudgetArgs{
		Name:        pulumi.String(a.Names.Prefix + "-monthly"),
		BudgetType:  pulumi.String("COST"),
		TimeUnit:    pulumi.String("MONTHLY"),
		LimitAmount: pulumi.String(strconv.FormatFloat(a.Budget.LimitUSD, 'f', 2, 64)),
		LimitUnit:   pulumi.String("USD"),
		CostFilters: budgets.BudgetCostFilterArray{budgets.BudgetCostFilterArgs{
			Name: pulumi.String("TagKeyValue"), Values: pulumi.ToStringArray([]string{StackTagFilter(stack)}),
		}},
		Notifications: budgets.BudgetNotificationArray{notify("ACTUAL", 80), notify("FORECASTED", 100)},
		Tags: pulumi.StringMap{
			"Name":        pulumi.String(name + "-budget"),
			"EstimateUSD": pulumi.String(strconv.FormatFloat(a.Budget.EstimateUSD, 'f', 2, 64)),
		},
	}, pulumi.Parent(c)); err != nil {
		return fmt.Errorf("ops: budget: %w", err)
	}
	return nil
}

// backup backs the DocumentDB cluster up daily with AWS Backup, kept
// RetentionDays, in a vault of its own (and copied to CopyTo's region when set),
// besides DocumentDB's own automated backups.
//
// The vaults are forceDestroy: AWS Backup refuses to delete a vault that
// holds recovery points (after the first daily job, always), so without it
// `pulumi destroy` stops there. Destroying the stack deletes these copies;
// the cluster's final snapshot (database.Cluster) is what destroy keeps.
func (c *Monitoring) backup(ctx *pulumi.Context, name string, a *MonitoringArgs) error {
	parent := pulumi.Parent(c)
	vault, err := backup.NewVault(ctx, name+"-backup", &backup.VaultArgs{
		Name:         pulumi.String(a.Names.Prefix + "-backup"),
		ForceDestroy: pulumi.Bool(true),
		Tags:         pulumi.StringMap{"Name": pulumi.String(name + "-backup")},
	}, parent)
	if err != nil {
		return fmt.Errorf("ops: backup vault: %w", err)
	}
	rule := backup.PlanRuleArgs{
		RuleName:        pulumi.String("daily"),
		TargetVaultName: vault.Name,
		Schedule:        pulumi.String("cron(0 5 * * ? *)"), // after DocumentDB's own backup window
		StartWindow:     pulumi.Int(60),
		Lifecycle:       &backup.PlanRuleLifecycleArgs{DeleteAfter: pulumi.Int(a.Backup.RetentionDays)},
	}
	if there := a.Backup.CopyTo; there != nil {
		copyVault, err := backup.NewVault(ctx, name+"-backup-copy", &backup.VaultArgs{
			Name:         pulumi.String(a.Names.Prefix + "-backup-copy"),
			ForceDestroy: pulumi.Bool(true),
			Tags:         pulumi.StringMap{"Name": pulumi.String(name + "-backup-copy")},
		}, parent, pulumi.Provider(there))
		if err != nil {
			return fmt.Errorf("ops: backup copy vault: %w", err)
		}
		rule.CopyActions = backup.PlanRuleCopyActionArray{backup.PlanRuleCopyActionArgs{
			DestinationVaultArn: copyVault.Arn,
			Lifecycle:           &backup.PlanRuleCopyActionLifecycleArgs{DeleteAfter: pulumi.Int(a.Backup.RetentionDays)},
		}}
	}
	plan, err := backup.NewPlan(ctx, name+"-backup", &backup.PlanArgs{
		Name:  pulumi.String(a.Names.Prefix + "-docdb"),
		Rules: backup.PlanRuleArray{rule},
		Tags:  pulumi.StringMap{"Name": pulumi.String(name + "-backup")},
	}, parent)
	if err != nil {
		return fmt.Errorf("ops: backup plan: %w", err)
	}
	trust, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole",
		}},
	})
	if err != nil {
		return err
	}
	role, err := iam.NewRole(ctx, name+"-backup", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(string(trust)),
		Description:      pulumi.String("AWS Backup backs up " + a.Names.Prefix + "'s DocumentDB cluster"),
		Tags:             pulumi.StringMap{"Name": pulumi.String(name + "-backup")},
	}, parent)
	if err != nil {
		return fmt.Errorf("ops: backup role: %w", err)
	}
	// AWS's managed policy for the service role: AWS Backup names the
	// snapshots and copies it makes itself, so it cannot be narrowed to
	// this cluster's ARNs; the selection below is what limits it.
	attach, err := iam.NewRolePolicyAttachment(ctx, name+"-backup", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.String("arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"),
	}, pulumi.Parent(role))
	if err != nil {
		return fmt.Errorf("ops: backup role policy: %w", err)
	}
	if _, err := backup.NewSelection(ctx, name+"-backup", &backup.SelectionArgs{
		Name:       pulumi.String(a.Names.Prefix + "-docdb"),
		PlanId:     plan.ID(),
		IamRoleArn: role.Arn,
		Resources:  pulumi.StringArray{a.Database.ClusterArn},
	}, pulumi.Parent(plan), pulumi.DependsOn([]pulumi.Resource{attach})); err != nil {
		return fmt.Errorf("ops: backup selection: %w", err)
	}
	return nil
}
