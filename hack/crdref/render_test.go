package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/internal/golden"
)

func root() string { return filepath.Join("..", "..") }

// TestReferenceUpToDate is the drift check of the generated reference.
func TestReferenceUpToDate(t *testing.T) {
	got, err := Render(filepath.Join(root(), "charts", "beacon", "crds"))
	if err != nil {
		t.Fatal(err)
	}
	// `make generate` rewrites it too.
	golden.Check(t, filepath.Join(root(), "docs", "reference.md"), got)
}

// TestEveryFieldListed checks the walk against the schema: every spec and
// status field of every CRD has a row.
func TestEveryFieldListed(t *testing.T) {
	doc, err := Render(filepath.Join(root(), "charts", "beacon", "crds"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`spec.addresses`", "`spec.autoAssign`", "`spec.avoidBuggyIPs`", "`spec.allowExternalIPs`",
		"`spec.serviceAllocation.priority`", "`spec.serviceAllocation.namespaces`",
		"`spec.serviceAllocation.namespaceSelector` | LabelSelector", "`status.ipv4.available`", "`status.conditions` | []Condition",
		"`spec.ipPools`", "`spec.ipPoolSelector`", "`spec.interfaces`", "`spec.nodeSelector` | LabelSelector",
		"`service`", "`node`", "`via`", "`addresses`",
		"default `true`", "beaconlb.io/ips", "beaconlb.io/pool", "beaconlb.io/allow-shared-ip", "beaconlb.io/allocated-from-pool",
		"`kubectl get ippools.beaconlb.io` (short: `ipp`, `bip`)", "Ready, Exhausted, Conflicting",
		"Accepted, Reason, Refs Resolved",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("reference lacks %s", want)
		}
	}
}
