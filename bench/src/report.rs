//! The results table. Every measurement is one tab-separated row in `results.tsv`, its first
//! column naming its kind; [`render`] turns them into markdown with the ratios and the issue's
//! targets.
//!
//! | kind | columns after the kind |
//! |---|---|
//! | `info` | key, value (machine, load, mode) |
//! | `load` | scenario, system, req/s, p50 ms, p99 ms, errors, CPU µs per request, peak RSS (text), note, context switches per request (`-` when threads came and went; absent in older rows) |
//! | `reload` | mode, edits, p50 ms, p99 ms, max ms, timeouts, target ms |
//! | `reload_load` | seconds, reloads, invalid, requests, failed, wrong, versions seen, req/s, p99 ms, converged |
//! | `scale` | books, file MB, start ms, reload ms, peak RSS MB, req/s, p99 ms, CPU µs per request (the first row, 9 books, is the baseline) |
//! | `reload_memory` | catalog bytes, RSS before MB, peak MB (small → large), RSS after MB (back to small, settle seconds later), peak MB (large → large), settle seconds |
//! | `footprint` | service, binary MB, start p50 ms, start max ms, stop max ms, idle RSS MB, idle RSS after load MB |
//! | `live` | shelf, edits, p50 ms, p99 ms, max ms (catalog write → new title in the open page), not seen, target ms |
//! | `streams` | idle `/events` streams, home page req/s without, req/s with, with ÷ without %, Marketplace RSS without MB, with MB, kB per stream |

use std::fmt::Write as _;

/// A load scenario: its key in `results.tsv`, its title, and the targets.
struct Scenario {
    key: &'static str,
    title: &'static str,
    /// Least ratio of our req/s to the seed's.
    seed_min: Option<f64>,
    /// Least ratio of our req/s to the floor's.
    floor_min: Option<f64>,
    /// Highest p99, ms.
    p99_max: Option<f64>,
}

const fn scenario(
    key: &'static str,
    title: &'static str,
    seed_min: Option<f64>,
    floor_min: Option<f64>,
    p99_max: Option<f64>,
) -> Scenario {
    Scenario {
        key,
        title,
        seed_min,
        floor_min,
        p99_max,
    }
}

/// The load scenarios, in table order.
const SCENARIOS: &[Scenario] = &[
    scenario(
        "recommend",
        "1. `Recommend`, 8 connections × 8 streams",
        Some(20.0),
        Some(0.70),
        None,
    ),
    scenario(
        "page",
        "2. Home page, 16 connections",
        Some(30.0),
        Some(0.30),
        Some(10.0),
    ),
    scenario(
        "json",
        "3. JSON API, 16 connections",
        Some(30.0),
        Some(0.30),
        Some(10.0),
    ),
    scenario(
        "page-streams",
        "9. Home page, 16 connections, beside idle `/events` streams",
        None,
        None,
        Some(10.0),
    ),
    scenario(
        "recommend-1",
        "Unloaded `Recommend`, 1 connection × 1 stream",
        None,
        None,
        None,
    ),
    scenario(
        "page-1",
        "Unloaded home page, 1 connection",
        None,
        None,
        None,
    ),
];

/// Most a reload's peak RSS may be, in times the catalog file's size.
const RELOAD_PEAK_FACTOR: f64 = 8.0;
/// How far above its level before a large catalog RSS may be once a small one is back, MB.
const RELOAD_RETURN_MB: f64 = 20.0;
/// Idle RSS target, MB.
const IDLE_RSS_MB: f64 = 20.0;
/// Start-to-healthy target, ms.
const START_MS: f64 = 300.0;
/// How much slower `Recommend`'s p99 may get on a big catalog.
const SCALE_P99_FACTOR: f64 = 1.5;
/// Least home page req/s beside idle event streams, in % of the req/s without them.
const STREAMS_MIN_PERCENT: f64 = 95.0;

fn num(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "✅ met" } else { "❌ missed" }
}

struct Load<'a> {
    scenario: &'a str,
    system: &'a str,
    rps: f64,
    /// How many runs of this scenario and system the rows held.
    runs: u32,
    cols: Vec<&'a str>,
}

/// Renders `tsv` (the rows described in the module docs) as a markdown report.
pub fn render(tsv: &str) -> String {
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let of_kind = |kind: &'static str| rows.iter().filter(move |r| r.first() == Some(&kind));
    let mut out = String::new();
    let mut targets: Vec<String> = Vec::new();

    for row in of_kind("info") {
        if let [_, key, value, ..] = row.as_slice() {
            let _ = writeln!(out, "- {key}: {value}");
        }
    }

    // A scenario run several times (full mode runs the load scenarios twice, in opposite
    // orders) keeps its best run: other work on the machine only ever slows a run down.
    let mut loads: Vec<Load<'_>> = Vec::new();
    for row in of_kind("load").filter(|r| r.len() >= 10) {
        let load = Load {
            scenario: row[1],
            system: row[2],
            rps: num(row[3]).unwrap_or(0.0),
            runs: 1,
            cols: row.clone(),
        };
        match loads
            .iter_mut()
            .find(|l| l.scenario == load.scenario && l.system == load.system)
        {
            Some(kept) => {
                let runs = kept.runs + 1;
                if load.rps > kept.rps {
                    *kept = load;
                }
                kept.runs = runs;
            }
            None => loads.push(load),
        }
    }
    if !loads.is_empty() {
        out.push_str(
            "\n### Load\n\n| scenario | system | req/s | p50 ms | p99 ms | errors | CPU µs/req | switches/req | peak RSS | ours/seed | ours/floor |\n|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n",
        );
    }
    let mut scenarios: Vec<&str> = SCENARIOS.iter().map(|s| s.key).collect();
    for load in &loads {
        if !scenarios.contains(&load.scenario) {
            scenarios.push(load.scenario);
        }
    }
    for scenario in scenarios {
        let (title, seed_min, floor_min, p99_max) = SCENARIOS
            .iter()
            .find(|s| s.key == scenario)
            .map_or((scenario, None, None, None), |s| {
                (s.title, s.seed_min, s.floor_min, s.p99_max)
            });
        let here: Vec<&Load<'_>> = loads.iter().filter(|l| l.scenario == scenario).collect();
        let reference = |system: &str| {
            here.iter()
                .find(|l| l.system == system)
                .map(|l| l.rps)
                .filter(|rps| *rps > 0.0)
        };
        let (seed, floor) = (reference("seed"), reference("floor"));
        let cpu = |system: &str| {
            here.iter()
                .find(|l| l.system == system)
                .and_then(|l| num(l.cols[7]))
                .filter(|cpu| *cpu > 0.0)
        };
        // The same comparison by CPU time per request, which the rest of the machine's load
        // hardly moves: how many of our requests cost what one of the reference's costs.
        let by_cpu = |reference: &str| match (cpu(reference), cpu("ours")) {
            (Some(theirs), Some(ours)) => {
                format!(" (CPU time per request: {:.1}× less)", theirs / ours)
            }
            _ => String::new(),
        };
        for load in &here {
            let c = &load.cols;
            let mine = load.system.starts_with("ours");
            // A variant of ours (`ours-all-cores`) is compared with the same variant of the
            // floor when there is one.
            let floor = load
                .system
                .strip_prefix("ours")
                .filter(|suffix| !suffix.is_empty())
                .and_then(|suffix| reference(&format!("floor{suffix}")))
                .or(floor);
            let ratio = |reference: Option<f64>, percent: bool| match reference {
                Some(r) if mine => {
                    if percent {
                        format!("{:.0}%", load.rps / r * 100.0)
                    } else {
                        format!("{:.1}×", load.rps / r)
                    }
                }
                _ => String::new(),
            };
            let mut notes: Vec<String> = Vec::new();
            if !c[9].is_empty() {
                notes.push(c[9].to_owned());
            }
            if load.runs > 1 {
                notes.push(format!("best of {}", load.runs));
            }
            let note = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            };
            let _ = writeln!(
                out,
                "| {title} | {}{note} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                load.system,
                load.rps,
                c[4],
                c[5],
                c[6],
                c[7],
                c.get(10).copied().unwrap_or(""),
                c[8],
                ratio(seed, false),
                ratio(floor, true),
            );
            if load.system != "ours" {
                continue;
            }
            if let (Some(min), Some(seed)) = (seed_min, seed) {
                let r = load.rps / seed;
                targets.push(format!(
                    "{title}: ≥ {min}× the seed: {r:.1}× {}{}",
                    verdict(r >= min),
                    by_cpu("seed")
                ));
            }
            if let (Some(min), Some(floor)) = (floor_min, floor) {
                let r = load.rps / floor;
                targets.push(format!(
                    "{title}: ≥ {:.0}% of the floor: {:.0}% {}",
                    min * 100.0,
                    r * 100.0,
                    verdict(r >= min)
                ));
            }
            if let (Some(max), Some(p99)) = (p99_max, num(c[5])) {
                targets.push(format!(
                    "{title}: p99 < {max} ms: {p99} ms {}",
                    verdict(p99 < max)
                ));
            }
            if let Some(errors) = num(c[6]) {
                targets.push(format!(
                    "{title}: no errors: {errors} {}",
                    verdict(errors == 0.0)
                ));
            }
        }
    }

    let reloads: Vec<&Vec<&str>> = of_kind("reload").filter(|r| r.len() >= 8).collect();
    if !reloads.is_empty() {
        out.push_str(
            "\n### 4. Hot reload latency (write → first answer with the new catalog)\n\n| mode | edits | p50 ms | p99 ms | max ms | not seen | target |\n|---|---:|---:|---:|---:|---:|---|\n",
        );
    }
    for r in reloads {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | p99 < {} ms |",
            r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        );
        if let (Some(p99), Some(target), Some(missing)) = (num(r[4]), num(r[7]), num(r[6])) {
            let ok = p99 < target && missing == 0.0;
            targets.push(format!(
                "4. Reload latency ({}): p99 < {target} ms: {p99} ms {}",
                r[1],
                verdict(ok)
            ));
        }
    }

    let under_load: Vec<&Vec<&str>> = of_kind("reload_load").filter(|r| r.len() >= 11).collect();
    if !under_load.is_empty() {
        out.push_str(
            "\n### 5. Reload under load\n\n| seconds | reloads | of them invalid | requests | failed | wrong | versions seen | req/s | p99 ms | last version served |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
    }
    for r in under_load {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]
        );
        let ok = num(r[5]) == Some(0.0) && num(r[6]) == Some(0.0);
        targets.push(format!(
            "5. Reload under load: 0 failed, 0 wrong: {} failed, {} wrong {}",
            r[5],
            r[6],
            verdict(ok)
        ));
    }

    let scale: Vec<&Vec<&str>> = of_kind("scale").filter(|r| r.len() >= 9).collect();
    if !scale.is_empty() {
        out.push_str(
            "\n### 6. Catalog scale\n\n| books | file MB | start → healthy ms | reload ms | peak RSS MB | `Recommend` req/s | p99 ms | p99 vs 9 books | CPU µs/req | CPU vs 9 books |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    // The first row, the 9-book catalog, is the baseline.
    let (base_p99, base_cpu) = scale.first().map_or(("", ""), |r| (r[7], r[8]));
    let versus = |value: &str, base: &str| match (num(value), num(base)) {
        (Some(value), Some(base)) if base > 0.0 => Some(value / base),
        _ => None,
    };
    for (i, r) in scale.iter().enumerate() {
        let factor = versus(r[7], base_p99);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            factor.map_or(String::new(), |f| format!("{f:.2}×")),
            r[8],
            versus(r[8], base_cpu).map_or(String::new(), |f| format!("{f:.2}×")),
        );
        if let Some(f) = factor.filter(|_| i > 0) {
            targets.push(format!(
                "6. `Recommend` p99 with {} books ≤ {SCALE_P99_FACTOR}× the 9-book p99: {f:.2}× {}",
                r[1],
                verdict(f <= SCALE_P99_FACTOR)
            ));
        }
    }

    let footprint: Vec<&Vec<&str>> = of_kind("footprint").filter(|r| r.len() >= 8).collect();
    if !footprint.is_empty() {
        out.push_str(
            "\n### 7. Footprint\n\n| process | binary MB | start → healthy p50 ms | max ms | SIGTERM → exit max ms | idle RSS MB | idle RSS after the load runs MB |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    for r in footprint {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        );
        if matches!(r[1], "recommendations" | "marketplace") {
            if let Some(rss) = num(r[6]) {
                let after = num(r[7]).unwrap_or(rss);
                targets.push(format!(
                    "7. {} idle RSS < {IDLE_RSS_MB} MB: {rss} MB at start, {after} MB after load {}",
                    r[1],
                    verdict(rss.max(after) < IDLE_RSS_MB)
                ));
            }
            if let Some(start) = num(r[4]) {
                targets.push(format!(
                    "7. {} start → healthy < {START_MS} ms: {start} ms (max) {}",
                    r[1],
                    verdict(start < START_MS)
                ));
            }
        }
    }

    let memory: Vec<&Vec<&str>> = of_kind("reload_memory").filter(|r| r.len() >= 7).collect();
    if !memory.is_empty() {
        out.push_str(
            "\n### 8. Reload memory (RSS around reloads of a large catalog)\n\n| catalog MB | RSS before MB | peak MB | peak ÷ file | RSS after MB | after − before MB | large → large peak MB | large → large ÷ file |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    for r in memory {
        let (Some(bytes), Some(pre), Some(peak), Some(after), Some(both)) =
            (num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]))
        else {
            continue;
        };
        let file_mb = bytes / 1_048_576.0;
        let (factor, both_factor, above) = (peak / file_mb, both / file_mb, after - pre);
        let _ = writeln!(
            out,
            "| {file_mb:.1} | {pre:.1} | {peak:.1} | {factor:.1}× | {after:.1} | {above:+.1} | {both:.1} | {both_factor:.1}× |"
        );
        targets.push(format!(
            "8. Peak RSS of a reload ≤ {RELOAD_PEAK_FACTOR}× the file ({file_mb:.1} MB): {factor:.1}× ({peak:.1} MB) {}",
            verdict(factor <= RELOAD_PEAK_FACTOR)
        ));
        targets.push(format!(
            "8. RSS {} s after a small catalog replaced the large one ≤ {RELOAD_RETURN_MB} MB above before: {above:+.1} MB ({pre:.1} → {after:.1} MB) {}",
            r[6],
            verdict(above <= RELOAD_RETURN_MB)
        ));
    }

    let live: Vec<&Vec<&str>> = of_kind("live").filter(|r| r.len() >= 8).collect();
    let streams: Vec<&Vec<&str>> = of_kind("streams").filter(|r| r.len() >= 8).collect();
    if !live.is_empty() || !streams.is_empty() {
        out.push_str("\n### 9. Live catalog\n");
    }
    if !live.is_empty() {
        out.push_str(
            "\n| shelf | edits | save → screen p50 ms | p99 ms | max ms | not seen | target |\n|---|---:|---:|---:|---:|---:|---|\n",
        );
    }
    for r in live {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | p99 < {} ms |",
            r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        );
        if let (Some(p99), Some(target), Some(missing)) = (num(r[4]), num(r[7]), num(r[6])) {
            targets.push(format!(
                "9. Saved catalog on screen: p99 < {target} ms, every edit seen: {p99} ms, {missing} not seen {}",
                verdict(p99 < target && missing == 0.0)
            ));
        }
    }
    if !streams.is_empty() {
        out.push_str(
            "\n| idle streams | home page req/s without | with | with ÷ without | Marketplace RSS without MB | with MB | kB per stream |\n|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    for r in streams {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}% | {} | {} | {} |",
            r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        );
        if let Some(percent) = num(r[4]) {
            targets.push(format!(
                "9. Home page req/s with {} idle streams ≥ {STREAMS_MIN_PERCENT}% of without: {percent}% {}",
                r[1],
                verdict(percent >= STREAMS_MIN_PERCENT)
            ));
        }
    }

    if !targets.is_empty() {
        out.push_str("\n### Targets\n\n");
        for t in targets {
            let _ = writeln!(out, "- {t}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets_come_from_the_same_scenario() {
        let tsv = "info\tmode\tquick\n\
            load\trecommend\tours\t80000\t0.8\t2.1\t0\t30\t10.1\t\n\
            load\trecommend\tseed\t4000\t10\t20\t0\t500\t30\t\n\
            load\trecommend\tfloor\t100000\t0.6\t1.5\t0\t20\t8\t\n\
            reload\tevents\t50\t120\t180\t190\t0\t500\n";
        let md = render(tsv);
        assert!(md.contains("- mode: quick"), "{md}");
        assert!(md.contains("| 20.0× | 80% |"), "{md}");
        assert!(
            md.contains("≥ 20× the seed: 20.0× ✅ met (CPU time per request: 16.7× less)"),
            "{md}"
        );
        assert!(md.contains("≥ 70% of the floor: 80% ✅ met"), "{md}");
        assert!(
            md.contains("Reload latency (events): p99 < 500 ms: 180 ms ✅ met"),
            "{md}"
        );
    }

    #[test]
    fn the_switches_column_comes_after_the_cpu_column() {
        let tsv = "load\tpage\tours\t20000\t1\t2\t0\t50.0\tmkt 9 MB\t\t2.14\n\
            load\tpage\tseed\t600\t20\t39\t0\t900\tseed 40 MB\t\t-\n\
            load\tpage\tfloor\t100000\t1\t2\t0\t9\tfloor 5 MB\t\n";
        let md = render(tsv);
        assert!(md.contains("| 50.0 | 2.14 | mkt 9 MB |"), "{md}");
        assert!(md.contains("| 900 | - | seed 40 MB |"), "{md}");
        // A row from before the column existed shows it empty.
        assert!(md.contains("| 9 |  | floor 5 MB |"), "{md}");
    }

    #[test]
    fn scale_rows_compare_with_the_nine_book_catalog() {
        let tsv = "scale\t9\t0.0\t6\t102\t8.8\t80000\t2.00\t15.0\n\
            scale\t100000\t7.0\t349\t287\t267.8\t60000\t3.50\t15.3\n";
        let md = render(tsv);
        assert!(
            md.contains(
                "| 100000 | 7.0 | 349 | 287 | 267.8 | 60000 | 3.50 | 1.75× | 15.3 | 1.02× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("with 100000 books ≤ 1.5× the 9-book p99: 1.75× ❌ missed"),
            "{md}"
        );
    }

    #[test]
    fn reload_memory_is_judged_against_the_file_size_and_the_level_before() {
        let md = render("reload_memory\t16777216\t8.0\t60.0\t30.5\t90.0\t5\n");
        assert!(
            md.contains("| 16.0 | 8.0 | 60.0 | 3.8× | 30.5 | +22.5 | 90.0 | 5.6× |"),
            "{md}"
        );
        assert!(
            md.contains("≤ 8× the file (16.0 MB): 3.8× (60.0 MB) ✅ met"),
            "{md}"
        );
        assert!(
            md.contains("RSS 5 s after a small catalog replaced the large one ≤ 20 MB above before: +22.5 MB (8.0 → 30.5 MB) ❌ missed"),
            "{md}"
        );
    }

    #[test]
    fn the_live_catalog_is_judged_by_its_p99_and_the_streams_by_their_ratio() {
        let tsv = "live\tpoetry\t50\t130\t180\t190\t0\t500\n\
            streams\t1000\t20000\t18600\t93.0\t10.0\t39.3\t30.0\n\
            load\tpage-streams\tours\t20000\t1\t2\t0\t50\tmkt 10 MB\tno /events streams\t2.1\n";
        let md = render(tsv);
        assert!(
            md.contains("| poetry | 50 | 130 | 180 | 190 | 0 | p99 < 500 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| 1000 | 20000 | 18600 | 93.0% | 10.0 | 39.3 | 30.0 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "Saved catalog on screen: p99 < 500 ms, every edit seen: 180 ms, 0 not seen ✅ met"
            ),
            "{md}"
        );
        assert!(
            md.contains("with 1000 idle streams ≥ 95% of without: 93% ❌ missed"),
            "{md}"
        );
        assert!(md.contains("| 9. Home page, 16 connections, beside idle `/events` streams | ours (no /events streams) |"), "{md}");
    }

    #[test]
    fn repeated_runs_keep_the_best() {
        let tsv = "load\trecommend\tours\t50000\t1\t3\t0\t30\t10\t\n\
            load\trecommend\tseed\t4000\t10\t20\t0\t500\t30\t\n\
            load\trecommend\tours\t60000\t0.8\t2.1\t0\t30\t10\t\n";
        let md = render(tsv);
        assert!(
            md.contains("| ours (best of 2) | 60000 | 0.8 | 2.1 |"),
            "{md}"
        );
        assert!(!md.contains("| 50000 |"), "{md}");
        assert!(md.contains("| 15.0× |"), "{md}");
    }

    #[test]
    fn a_missed_target_says_so() {
        let tsv = "load\tpage\tours\t10000\t1\t12\t0\t100\t20\t\n\
            load\tpage\tseed\t800\t20\t39\t0\t900\t40\t\n\
            footprint\tmarketplace\t5.0\t10\t400\t5\t25\t26\n";
        let md = render(tsv);
        assert!(md.contains("≥ 30× the seed: 12.5× ❌ missed"), "{md}");
        assert!(md.contains("p99 < 10 ms: 12 ms ❌ missed"), "{md}");
        assert!(
            md.contains("idle RSS < 20 MB: 25 MB at start, 26 MB after load ❌ missed"),
            "{md}"
        );
        assert!(
            md.contains("start → healthy < 300 ms: 400 ms (max) ❌ missed"),
            "{md}"
        );
    }

    #[test]
    fn a_variant_of_ours_is_compared_with_the_same_variant_of_the_floor() {
        let tsv = "load\tpage\tours\t20000\t1\t2\t0\t50\t20\t\n\
            load\tpage\tfloor\t100000\t1\t2\t0\t9\t5\t\n\
            load\tpage\tours-all-cores\t30000\t1\t2\t0\t40\t20\ta worker thread per core\n\
            load\tpage\tfloor-all-cores\t120000\t1\t2\t0\t8\t5\ta worker thread per core\n";
        let md = render(tsv);
        assert!(md.contains("| 20% |"), "ours vs the floor: {md}");
        assert!(
            md.contains("| 25% |"),
            "ours-all-cores vs floor-all-cores: {md}"
        );
    }
}
