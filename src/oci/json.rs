//! Canonical JSON for content-addressed documents: object keys sorted, no whitespace.
//! oci-spec keeps annotations, labels and exposed ports in `HashMap`s, whose order varies
//! from run to run, so every document goes through a `Value` and is written here.

use serde::Serialize;
use serde_json::Value;

/// Serialize `v` with every object's keys in byte order and no insignificant whitespace.
pub fn to_canonical_vec<T: Serialize>(v: &T) -> anyhow::Result<Vec<u8>> {
    let value = serde_json::to_value(v)?;
    let mut out = Vec::new();
    write(&value, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write(&map[k], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "mid", "Beta"] {
            m.insert(
                k.to_string(),
                serde_json::json!({"y": [1, {"b": 2, "a": "x\"y"}], "x": null}),
            );
        }
        let out = String::from_utf8(to_canonical_vec(&m).unwrap()).unwrap();
        assert!(
            out.starts_with(r#"{"Beta":{"x":null,"y":[1,{"a":"x\"y","b":2}]},"alpha""#),
            "{out}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            serde_json::to_value(&m).unwrap()
        );
    }
}
