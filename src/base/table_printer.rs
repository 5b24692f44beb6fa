//! Upstream's "table printer" JSON, which its HTTP pages answer with: compact, keys in the
//! order written (serde_json's map would sort them), every value a string; single-column
//! tables are `{"row":"value"}`, multi-column ones `{"row":{"<title>":"row","col":"v"}}`.

/// A JSON object written in order.
#[derive(Debug, Default, Clone)]
pub struct Object {
    parts: Vec<String>,
}

fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl Object {
    pub fn new() -> Object {
        Object::default()
    }

    /// Adds `"k":"v"`.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Object {
        self.parts.push(format!("{}:{}", quote(k), quote(v)));
        self
    }

    /// Adds `"k":<already encoded JSON>`.
    pub fn raw(&mut self, k: &str, json: String) -> &mut Object {
        self.parts.push(format!("{}:{json}", quote(k)));
        self
    }

    /// Adds `"k":{...}`.
    pub fn obj(&mut self, k: &str, o: &Object) -> &mut Object {
        self.raw(k, o.finish())
    }

    /// Adds one row of a multi-column table: `"row":{"<title>":"row","c1":"v1",...}`.
    pub fn row(&mut self, title: &str, row: &str, cols: &[(&str, String)]) -> &mut Object {
        let mut o = Object::new();
        o.str(title, row);
        for (c, v) in cols {
            o.str(c, v);
        }
        self.obj(row, &o)
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn finish(&self) -> String {
        format!("{{{}}}", self.parts.join(","))
    }

    /// The object and a newline, as the pages end.
    pub fn finish_line(&self) -> String {
        format!("{}\n", self.finish())
    }
}

/// A double with 2 decimals ("0.00" for magnitudes below 1e-6), as upstream prints them.
pub fn double(v: f64) -> String {
    if v.abs() < 1e-6 {
        "0.00".into()
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_order_and_quote_values() {
        let mut g = Object::new();
        g.str("app_name", "t\"1").str("app_id", "2");
        let mut top = Object::new();
        top.obj("general", &g);
        top.row("pidx", "0", &[("ballot", "3".into())]);
        assert_eq!(
            top.finish_line(),
            "{\"general\":{\"app_name\":\"t\\\"1\",\"app_id\":\"2\"},\"0\":{\"pidx\":\"0\",\"ballot\":\"3\"}}\n"
        );
        assert_eq!(double(0.0), "0.00");
        assert_eq!(double(1.234), "1.23");
    }
}
