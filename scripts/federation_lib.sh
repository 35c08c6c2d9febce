# Data and PKI of the example federations in configs/, shared by scripts/federation.sh and the
# end-to-end tests. Source it with BIN (the cohort binaries) and ROOT (the repository) set.

# Where Debian's dataset-fashion-mnist package puts the IDX files.
FASHION_MNIST_DIR=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

# fed_pki DIR FEDERATION SITE...: a development CA, the coordinator's certificate (localhost,
# 127.0.0.1), one certificate per site and an operator's admin certificate.
fed_pki() {
  local dir=$1 federation=$2
  shift 2
  "$BIN/cohortctl" pki init-ca --dir "$dir" --federation "$federation" >/dev/null
  "$BIN/cohortctl" pki issue --dir "$dir" --federation "$federation" --coordinator \
    --name localhost --ip 127.0.0.1 >/dev/null
  for site in "$@"; do
    "$BIN/cohortctl" pki issue --dir "$dir" --federation "$federation" --site "$site" >/dev/null
  done
  "$BIN/cohortctl" pki issue --dir "$dir" --federation "$federation" --admin ops >/dev/null
}

# fed_data_fashion_mnist OUT [LIMIT]: the Fashion-MNIST training images split non-IID
# (dirichlet:0.5) over site-a/b/c as OUT/site-X-{images-idx3,labels-idx1}-ubyte.gz, and the test
# images split iid as OUT/test/site-X-*.gz (the sites' held-out sets). LIMIT > 0 uses only
# the first LIMIT training images and LIMIT / 2 test images (quick runs, CI).
fed_data_fashion_mnist() {
  local out=$1 limit=${2:-0}
  if [ ! -r "$FASHION_MNIST_DIR/train-images-idx3-ubyte.gz" ]; then
    echo "Fashion-MNIST not found in $FASHION_MNIST_DIR: apt-get install dataset-fashion-mnist" \
      "(scripts/setup.sh installs it)" >&2
    return 1
  fi
  "$BIN/cohortctl" data split --images "$FASHION_MNIST_DIR/train-images-idx3-ubyte.gz" \
    --labels "$FASHION_MNIST_DIR/train-labels-idx1-ubyte.gz" --limit "$limit" \
    --sites 3 --scheme dirichlet:0.5 --seed 1 --out "$out" --names site-a,site-b,site-c
  "$BIN/cohortctl" data split --images "$FASHION_MNIST_DIR/t10k-images-idx3-ubyte.gz" \
    --labels "$FASHION_MNIST_DIR/t10k-labels-idx1-ubyte.gz" --limit $((limit / 2)) \
    --sites 3 --scheme iid --seed 1 --out "$out/test" --names site-a,site-b,site-c
}

# fed_data_bank OUT [central]: the German credit data. 20% of the applicants (200, stratified)
# are set aside as OUT/test.csv, the coordinator's central test file; the other 800 are split
# over three banks of different sizes (quantity-skew) as OUT/bank-{a,b,c}.csv, or, with
# `central`, all given to one site as OUT/bank-central.csv (the centrally trained baseline;
# its test.csv is the same 200 applicants).
fed_data_bank() {
  local out=$1
  if [ "${2:-}" = central ]; then
    "$BIN/cohortctl" data split --input "$ROOT/data/credit_g.csv" --label bad_credit --sites 1 \
      --scheme iid --seed 3 --holdout 0.2 --out "$out" --names bank-central
  else
    "$BIN/cohortctl" data split --input "$ROOT/data/credit_g.csv" --label bad_credit --sites 3 \
      --scheme quantity-skew --seed 3 --holdout 0.2 --out "$out" --names bank-a,bank-b,bank-c
  fi
}
