# Sourced by the egress-bench shell tests: a scratch directory removed on exit, and
# fail, which reports a failed expectation and counts it (the test exits 1 if any did).
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
