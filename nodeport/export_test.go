package nodeport

// The external tests trace rulesets with nodeporttest, which imports
// nodeport and so cannot be imported by an internal test; they share
// these fixtures.
var (
	Fixture = fixture
	KubeWeb = kubeWeb
)
