# Sourced by bench/dagger.sh and bench/drone_dagger.sh: checks MODEL (a checkpoint stem, .json/.safetensors
# accepted) and DATA (train/ and val/ bag folders), and sets CORE and SEED from the checkpoint's config.
MODEL=${MODEL%.safetensors}
MODEL=${MODEL%.json}
[[ -f "$MODEL.json" && -f "$MODEL.safetensors" ]] || { echo "error: $MODEL.json/.safetensors not found" >&2; exit 2; }
[[ -d "$DATA/train" && -d "$DATA/val" ]] || { echo "error: $DATA has no train/ and val/ bag folders" >&2; exit 2; }
read -r CORE SEED < <($PY -c "import json,sys; c=json.load(open(sys.argv[1]))['config']; print(c['core'], c['seed'])" \
  "$MODEL.json")
