//! Properties of the pure parts the simulation leans on: mapping arguments and the
//! progress function across whole plans.

use std::collections::BTreeMap;

use proptest::prelude::*;
use protector::core::model::{parse_mapping, parse_mappings, OperationType, ResourceMappings};
use protector::core::progress::{plan, progress};
use protector::core::MappingError;

const TYPES: [OperationType; 5] = [
    OperationType::Failover,
    OperationType::Failback,
    OperationType::TestFailover,
    OperationType::TestCleanup,
    OperationType::SyncVolumes,
];

/// A mapping side: non-empty, no `=`, no surrounding whitespace.
fn side() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:/-][A-Za-z0-9_.:/ -]{0,30}[A-Za-z0-9_.:/-]|[A-Za-z0-9_.:/-]"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_formatted_mapping_parses_back_to_its_sides(
        src in side(), dst in side(), pad_l in " {0,3}", pad_r in " {0,3}"
    ) {
        let arg = format!("{pad_l}{src}{pad_r}={pad_r}{dst}{pad_l}");
        prop_assert_eq!(parse_mapping(&arg), Ok((src, dst)));
    }

    #[test]
    fn a_map_rendered_as_arguments_parses_back_unchanged(
        map in proptest::collection::btree_map(side(), side(), 0..8),
        repeat in any::<bool>(),
    ) {
        let mut args: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if repeat {
            // Repeating a pair is harmless.
            args.extend(args.clone());
        }
        prop_assert_eq!(parse_mappings(&args), Ok(map));
    }

    #[test]
    fn arbitrary_text_either_parses_into_trimmed_non_empty_sides_or_names_itself(
        arg in "\\PC{0,40}"
    ) {
        match parse_mapping(&arg) {
            Ok((s, d)) => {
                prop_assert!(!s.is_empty() && !d.is_empty());
                prop_assert_eq!(s.trim(), s.as_str());
                prop_assert_eq!(d.trim(), d.as_str());
                prop_assert_eq!(arg.matches('=').count(), 1);
            }
            Err(e) => {
                let quoted = match &e {
                    MappingError::MissingSeparator { arg: a }
                    | MappingError::TooManySeparators { arg: a }
                    | MappingError::EmptySource { arg: a }
                    | MappingError::EmptyTarget { arg: a } => a.clone(),
                    other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
                };
                prop_assert_eq!(quoted, arg);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_source_mapped_to_two_targets_is_a_conflict_naming_both(
        src in side(), a in side(), b in side()
    ) {
        prop_assume!(a != b);
        let err = parse_mappings(&[format!("{src}={a}"), format!("{src}={b}")]);
        prop_assert_eq!(
            err,
            Err(MappingError::Conflict { source_name: src, first: a, second: b })
        );
    }

    #[test]
    fn reversing_a_one_to_one_mapping_twice_is_the_identity(
        nets in proptest::collection::btree_map(side(), side(), 0..6),
    ) {
        // One-to-one only: distinct targets.
        let mut seen = BTreeMap::new();
        let nets: BTreeMap<String, String> = nets
            .into_iter()
            .filter(|(k, v)| seen.insert(v.clone(), k.clone()).is_none())
            .collect();
        let m = ResourceMappings { networks: nets, ..ResourceMappings::default() };
        prop_assert_eq!(m.reversed().reversed(), m);
    }

    #[test]
    fn progress_never_goes_back_across_a_whole_plan(
        t in 0usize..5,
        fractions in proptest::collection::vec(0.0f64..=1.0, 1..6),
        noise in prop_oneof![Just(f64::NAN), Just(-1.0), Just(2.0), Just(0.5)],
    ) {
        let t = TYPES[t];
        let mut last = 0u8;
        for spec in plan(t) {
            let mut fs: Vec<f64> = fractions.clone();
            fs.sort_by(f64::total_cmp);
            fs.insert(0, 0.0);
            fs.push(1.0);
            for f in fs {
                let (phase, p) = progress(t, spec.step, f).expect("a step of its plan");
                prop_assert!(p >= last, "{t}: {:?} at {f} went back from {last} to {p}", spec.step);
                prop_assert!((spec.start..=spec.end).contains(&p));
                prop_assert_eq!(phase, spec.phase);
                last = p;
            }
            // Out-of-range fractions stay within the step.
            let (_, p) = progress(t, spec.step, noise).expect("a step of its plan");
            prop_assert!((spec.start..=spec.end).contains(&p));
        }
        prop_assert_eq!(last, 100);
    }
}
