"""``lue-spie data ...``: build dataset folders and check the data manifest::

    lue-spie data synth   --sites N --years Y --seed S --out DIR [--world NAME]
                          [--structural-error]
    lue-spie data fluxnet --src DIR --fapar FILE --sites FILE [--features FILE] [--ndvi FILE]
                          [--years Y0-Y1] [--site-ids ID ...] [--missing-fapar error|skip]
                          --out DIR
    lue-spie data check   DIR                      validate a dataset folder, print a summary
    lue-spie data manifest [--path FILE] [--verify DIR] [--strict]
    lue-spie data compare DIR [DIR ...] [--out DIR] [--reference FILE]
                          realism statistics of datasets next to real FLUXNET sites

``synth`` and ``fluxnet`` write through the data sources ``"virtual"`` and ``"fluxnet"``
(:mod:`lue_spie.data.sources`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lue_spie.data.io import years_argument


def _synth(args: argparse.Namespace) -> int:
    from lue_spie.data.sources import get_source

    settings = {"n_sites": args.sites, "n_years": args.years, "seed": args.seed,
                "structural_error": args.structural_error, "world": args.world}
    if args.start_year is not None:
        settings["start_year"] = args.start_year
    out = get_source("virtual", **settings).write(args.out, progress=True)
    print(f"virtual FLUXNET ({args.sites} sites x {args.years} years, seed {args.seed}, "
          f"world {args.world}) written to {out}")
    return 0


def _fluxnet(args: argparse.Namespace) -> int:
    from lue_spie.data.sources import get_source

    source = get_source(
        "fluxnet", src=args.src, fapar=args.fapar, sites_csv=args.sites, features=args.features,
        ndvi=args.ndvi, years=args.years, site_ids=args.site_ids,
        missing_fapar=args.missing_fapar, record_features=args.record_features)
    out = source.write(args.out, progress=True)
    print(f"FLUXNET dataset written to {out}")
    return _check_summary(out)


def _check_summary(path: Path) -> int:
    from lue_spie.data.io import good_days, load_dataset

    ds = load_dataset(path)
    sd = ds.site_day
    good = good_days(sd)
    print(f"{ds.path}: {len(ds.sites)} sites, {len(sd)} site-days "
          f"({sd['date'].min().date()} to {sd['date'].max().date()}), "
          f"{int(good.sum())} good-quality days, mean GPP_obs {sd['GPP_obs'].mean():.2f} "
          "gC m-2 d-1" + (", with truth" if ds.truth is not None else ""))
    return 0


def _check(args: argparse.Namespace) -> int:
    return _check_summary(args.dir)


def _manifest(args: argparse.Namespace) -> int:
    from lue_spie.data.manifest import load, verify

    man = load(args.path)
    print(f"{man.path}: {len(man.entries)} datasets")
    if args.verify is None:
        for e in man.entries:
            print(f"  {e.id:26s} {e.version[:30]:30s} {e.licence[:40]}")
        return 0
    report = verify(man, args.verify, strict=args.strict)
    print(report.format())
    return 0 if report.ok else 1


def _compare(args: argparse.Namespace) -> int:
    from lue_spie.data import realism

    reference = realism.load_reference(args.reference) if args.reference else None
    result = realism.compare_datasets(args.dirs, reference)
    labels = list(result.per_site)
    ref = result.reference
    print(f"Realism statistics (lue_spie.data.realism) of {', '.join(labels)} next to the "
          f"real sites {', '.join(ref.sites['site'])} ({ref.meta.get('source', '')}); "
          "dataset columns are class medians over sites.\n")
    print(realism.format_comparison(result.table, labels))
    if args.out is not None:
        from lue_spie import store

        out = args.out
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is a file, not a folder (--out)")
        out.mkdir(parents=True, exist_ok=True)
        from lue_spie.layout import ComparisonFiles, DataFiles

        files = ComparisonFiles(out)
        prov = store.make_provenance(
            "data.compare", inputs={f"dataset_{lab}": DataFiles(p).site_day
                                    for lab, p in zip(labels, args.dirs, strict=True)},
            settings={"datasets": [str(p) for p in args.dirs], "labels": labels,
                      "reference": str(args.reference or realism.reference_path().name),
                      "definitions_version": realism.DEFINITIONS_VERSION})
        written = [store.write_parquet(result.table, files.table, prov),
                   store.atomic_write_text(files.csv, result.table.to_csv(index=False))]
        for lab, table in result.per_site.items():
            written.append(store.write_parquet(table.reset_index(),
                                               files.site_statistics(lab), prov))
        from lue_spie.plots import realism_cycles

        fig = realism_cycles(ref, result.per_site, result.cycles)
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        written.append(store.atomic_write_bytes(files.figure, buf.getvalue()))
        print(f"written to {out}: " + ", ".join(p.name for p in written))
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lue-spie data`` and its sub-commands."""
    data = subparsers.add_parser("data", help="build dataset folders (virtual or real FLUXNET)")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    synth = sub.add_parser("synth", help="generate a virtual FLUXNET dataset folder")
    synth.add_argument("--sites", type=int, default=196, help="number of sites (default 196)")
    synth.add_argument("--years", type=int, default=10, help="years per site (default 10)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", type=Path, required=True, help="output dataset folder")
    from lue_spie.data.virtual.worlds import WORLDS

    synth.add_argument("--world", choices=list(WORLDS), default="smooth",
                       help="the world's dials: " + "; ".join(
                           f"{name}: {w.description}" for name, w in WORLDS.items())
                       + " (default smooth)")
    synth.add_argument("--structural-error", action="store_true",
                       help="add a process the LUE model lacks to GPP_obs")
    synth.add_argument("--start-year", type=int, default=None,
                       help="first calendar year (generator default when omitted)")
    synth.set_defaults(func=_synth)

    flux = sub.add_parser("fluxnet", help="read FLUXNET daily flux files (FLUXNET2015 FULLSET or "
                          "SUBSET, AmeriFlux FLUXNET, ICOS ETC L2 FLUXNET) into a dataset folder")
    flux.add_argument("--src", type=Path, required=True,
                      help="folder with one daily file per site, named "
                           "FLX_<SITE>_FLUXNET2015_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>.csv, "
                           "AMF_<SITE>_FLUXNET_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>.csv or "
                           "ICOSETC_<SITE>_FLUXNET_DD_<L2|INTERIM_L2>.csv")
    flux.add_argument("--fapar", type=Path, required=True,
                      help="FAPAR table (SITE_ID, date, FAPAR[, FAPAR_MODIS_obs])")
    flux.add_argument("--sites", type=Path, required=True,
                      help="site table (SITE_ID, lon, lat, elv, classid, koeppen_code, whc)")
    flux.add_argument("--features", type=Path, default=None,
                      help="optional feature table (SITE_ID + feature columns)")
    flux.add_argument("--ndvi", type=Path, default=None,
                      help="optional NDVI table (SITE_ID, date, NDVI); else NDVI from FAPAR")
    flux.add_argument("--years", type=years_argument, default=None, metavar="YEARS",
                      help="calendar years to keep, e.g. 2010-2012 or 2010,2012")
    flux.add_argument("--site-ids", nargs="+", default=None, metavar="ID",
                      help="sites to read (default: every file in --src)")
    flux.add_argument("--missing-fapar", choices=("error", "skip"), default="error",
                      help="what to do with a site without FAPAR (default: error)")
    flux.add_argument("--no-record-features", dest="record_features", action="store_false",
                      help="leave BIO/aridity/VIF features that --features does not give NaN "
                           "instead of computing them from the flux record")
    flux.add_argument("--out", type=Path, required=True, help="output dataset folder")
    flux.set_defaults(func=_fluxnet)

    check = sub.add_parser("check", help="validate a dataset folder and print a summary")
    check.add_argument("dir", type=Path, help="dataset folder")
    check.set_defaults(func=_check)

    man = sub.add_parser("manifest", help="list the data manifest or verify files against it")
    man.add_argument("--path", type=Path, default=None, help="manifest file (default: bundled)")
    man.add_argument("--verify", type=Path, default=None, metavar="DIR",
                     help="look for the manifest's files in DIR and check checksums")
    man.add_argument("--strict", action="store_true", help="fail on the first checksum mismatch")
    man.set_defaults(func=_manifest)

    comp = sub.add_parser(
        "compare", help="realism statistics of datasets next to real FLUXNET sites",
        description="Weather and GPP variability statistics (lue_spie.data.realism) of each "
                    "dataset folder, as class medians (PFT x Koeppen main group) next to the "
                    "real FLUXNET2015 sites of the reference shipped with lue-spie.")
    comp.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="dataset folder(s)")
    comp.add_argument("--out", type=Path, default=None,
                      help="write the comparison table (parquet and CSV), per-site statistics "
                           "and the figure")
    comp.add_argument("--reference", type=Path, default=None, metavar="FILE",
                      help="a reference JSON (lue_spie.data.realism.write_reference); "
                           "default: the shipped one")
    comp.set_defaults(func=_compare)
