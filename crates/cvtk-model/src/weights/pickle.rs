//! A reader for the subset of Python's pickle protocol (2 to 5) that
//! `torch.save(state_dict)` writes: dicts (including `OrderedDict`), tuples,
//! lists, strings, numbers, and tensors rebuilt by `torch._utils._rebuild_tensor_v2`
//! from storages referenced by persistent ids. No code is ever executed: any
//! other callable becomes an opaque [`Value::Object`].

use std::collections::HashMap;

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global reference `module.name`.
    Global(String, String),
    /// A storage reference from a persistent id.
    Storage(StorageRef),
    /// A tensor view of a storage.
    Tensor(TensorRef),
    /// Any other object (a callable applied to arguments), kept opaque.
    Object(String),
}

/// A storage referenced by a persistent id: `('storage', torch.FloatStorage, key, location, numel, ...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The storage class name, e.g. `FloatStorage`.
    pub dtype: String,
    /// The key naming the storage's data (a zip entry, or a legacy record).
    pub key: String,
    /// Number of elements.
    pub numel: i64,
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: i64,
    /// Shape.
    pub size: Vec<i64>,
    /// Strides, in elements.
    pub stride: Vec<i64>,
}

/// How deep values may nest. A state dict nests three or four levels; the
/// limit keeps building, comparing and dropping values off deep recursion.
pub const MAX_DEPTH: u32 = 100;

/// A value on the stack or in the memo, with its nesting depth and its weight
/// (nodes plus string bytes): what a copy of it costs.
#[derive(Clone)]
struct Node {
    v: Value,
    depth: u32,
    weight: u64,
}

impl Node {
    fn leaf(v: Value) -> Node {
        let weight = 1 + match &v {
            Value::Str(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            _ => 0,
        };
        Node { v, depth: 1, weight }
    }
}

enum Item {
    Mark,
    V(Node),
}

/// Reads one pickle from `data` starting at `*pos`; leaves `*pos` after its STOP.
///
/// Within budgets, so that no input makes it panic, recurse deeply or
/// allocate far more than the input's size: values nest at most
/// [`MAX_DEPTH`] levels, and the memo's copies (a pickle may refer to the
/// same value again and again, each reference a copy here) weigh at most
/// eight times the input plus a megabyte, in nodes and string bytes.
pub fn read_pickle(data: &[u8], pos: &mut usize) -> Result<Value, String> {
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: HashMap<u32, Node> = HashMap::new();
    let mut budget: u64 = 8 * data.len() as u64 + (1 << 20);
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = pos
            .checked_add(n)
            .and_then(|end| data.get(*pos..end))
            .ok_or_else(|| format!("pickle ends early at byte {}", *pos))?;
        *pos += n;
        Ok(s)
    };
    let u8_at = |pos: &mut usize| -> Result<u8, String> { Ok(take(pos, 1)?[0]) };
    let le_u16 = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    let le_u32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    fn pop(stack: &mut Vec<Item>) -> Result<Node, String> {
        match stack.pop() {
            Some(Item::V(v)) => Ok(v),
            Some(Item::Mark) => Err("unexpected MARK on the pickle stack".into()),
            None => Err("pickle stack underflow".into()),
        }
    }
    fn pop_mark(stack: &mut Vec<Item>) -> Result<Vec<Node>, String> {
        let mut out = Vec::new();
        loop {
            match stack.pop() {
                Some(Item::Mark) => break,
                Some(Item::V(v)) => out.push(v),
                None => return Err("MARK missing on the pickle stack".into()),
            }
        }
        out.reverse();
        Ok(out)
    }
    fn top_mut(stack: &mut [Item]) -> Result<&mut Node, String> {
        match stack.last_mut() {
            Some(Item::V(v)) => Ok(v),
            _ => Err("no object on the pickle stack".into()),
        }
    }
    /// A container of `items`, within the depth limit.
    fn container(items: Vec<Node>, make: fn(Vec<Value>) -> Value) -> Result<Node, String> {
        let mut node = Node { v: Value::None, depth: 1, weight: 1 };
        grow(&mut node, &items)?;
        node.v = make(items.into_iter().map(|n| n.v).collect());
        Ok(node)
    }
    /// Grows `target`'s depth and weight by `items`, within the depth limit.
    fn grow(target: &mut Node, items: &[Node]) -> Result<(), String> {
        let depth = 1 + items.iter().map(|n| n.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels: not a state dict"));
        }
        target.depth = target.depth.max(depth);
        target.weight += items.iter().map(|n| n.weight).sum::<u64>();
        Ok(())
    }
    fn push_items(target: &mut Node, items: Vec<Node>) -> Result<(), String> {
        match &target.v {
            Value::List(_) => {
                grow(target, &items)?;
                if let Value::List(l) = &mut target.v {
                    l.extend(items.into_iter().map(|n| n.v));
                }
                Ok(())
            }
            Value::Object(_) => Ok(()),
            _ => Err("APPEND to something that is not a list".into()),
        }
    }
    fn set_items(target: &mut Node, items: Vec<Node>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of items".into());
        }
        match &target.v {
            Value::Dict(_) => {
                grow(target, &items)?;
                if let Value::Dict(d) = &mut target.v {
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k.v, v.v));
                    }
                }
                Ok(())
            }
            Value::Object(_) => Ok(()),
            _ => Err("SETITEM on something that is not a dict".into()),
        }
    }
    loop {
        let op = u8_at(pos)?;
        match op {
            0x80 => {
                u8_at(pos)?; // PROTO n
            }
            0x95 => {
                take(pos, 8)?; // FRAME
            }
            b'.' => return pop(&mut stack).map(|n| n.v), // STOP
            b'(' => stack.push(Item::Mark),
            b')' => stack.push(Item::V(Node::leaf(Value::Tuple(Vec::new())))),
            b'}' => stack.push(Item::V(Node::leaf(Value::Dict(Vec::new())))),
            b']' => stack.push(Item::V(Node::leaf(Value::List(Vec::new())))),
            b'N' => stack.push(Item::V(Node::leaf(Value::None))),
            0x88 => stack.push(Item::V(Node::leaf(Value::Bool(true)))),
            0x89 => stack.push(Item::V(Node::leaf(Value::Bool(false)))),
            b'K' => {
                let v = u8_at(pos)?;
                stack.push(Item::V(Node::leaf(Value::Int(i64::from(v)))))
            }
            b'M' => {
                let b = take(pos, 2)?;
                stack.push(Item::V(Node::leaf(Value::Int(i64::from(le_u16(b))))))
            }
            b'J' => {
                let b = take(pos, 4)?;
                stack.push(Item::V(Node::leaf(Value::Int(i64::from(le_u32(b) as i32)))))
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = usize::from(u8_at(pos)?);
                let b = take(pos, n)?;
                let v = if n == 0 {
                    0
                } else if n <= 8 {
                    let mut buf = if b[n - 1] & 0x80 != 0 { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(b);
                    i64::from_le_bytes(buf)
                } else {
                    // Too big for i64 (e.g. the legacy magic number): keep a marker.
                    i64::MIN
                };
                stack.push(Item::V(Node::leaf(Value::Int(v))))
            }
            b'G' => {
                let b = take(pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                stack.push(Item::V(Node::leaf(Value::Float(f64::from_be_bytes(a)))))
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => le_u32(take(pos, 4)?) as usize,
                    0x8c => usize::from(u8_at(pos)?),
                    _ => {
                        let b = take(pos, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        u64::from_le_bytes(a) as usize
                    }
                };
                let s = String::from_utf8_lossy(take(pos, n)?).into_owned();
                stack.push(Item::V(Node::leaf(Value::Str(s))))
            }
            b'C' | b'B' => {
                let n = if op == b'C' { usize::from(u8_at(pos)?) } else { le_u32(take(pos, 4)?) as usize };
                stack.push(Item::V(Node::leaf(Value::Bytes(take(pos, n)?.to_vec()))))
            }
            b'c' => {
                // GLOBAL: "module\nname\n"
                let read_line = |pos: &mut usize| -> Result<String, String> {
                    let start = *pos;
                    while u8_at(pos)? != b'\n' {}
                    Ok(String::from_utf8_lossy(&data[start..*pos - 1]).into_owned())
                };
                let module = read_line(pos)?;
                let name = read_line(pos)?;
                stack.push(Item::V(Node::leaf(Value::Global(module, name))))
            }
            0x93 => {
                // STACK_GLOBAL
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module.v, name.v) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Item::V(Node::leaf(Value::Global(m, n)))),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => u32::from(u8_at(pos)?),
                    b'r' => le_u32(take(pos, 4)?),
                    _ => memo.len() as u32,
                };
                let v = match stack.last() {
                    Some(Item::V(v)) => v,
                    _ => return Err("memoize with no object on the stack".into()),
                };
                budget = budget.checked_sub(v.weight).ok_or_else(|| {
                    "the pickle copies its own values far more than a state dict does: refused".to_string()
                })?;
                memo.insert(key, v.clone());
            }
            b'h' | b'j' => {
                let key = if op == b'h' { u32::from(u8_at(pos)?) } else { le_u32(take(pos, 4)?) };
                let v = memo.get(&key).ok_or_else(|| format!("memo key {key} missing"))?;
                budget = budget.checked_sub(v.weight).ok_or_else(|| {
                    "the pickle copies its own values far more than a state dict does: refused".to_string()
                })?;
                stack.push(Item::V(v.clone()))
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Item::V(container(items, Value::Tuple)?))
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&mut stack)?);
                }
                items.reverse();
                stack.push(Item::V(container(items, Value::Tuple)?))
            }
            b'a' => {
                let v = pop(&mut stack)?;
                push_items(top_mut(&mut stack)?, vec![v])?
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                push_items(top_mut(&mut stack)?, items)?
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                set_items(top_mut(&mut stack)?, vec![k, v])?
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                set_items(top_mut(&mut stack)?, items)?
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Item::V(container(items, Value::List)?))
            }
            b'd' => {
                let items = pop_mark(&mut stack)?;
                let mut d = Node::leaf(Value::Dict(Vec::new()));
                set_items(&mut d, items)?;
                stack.push(Item::V(d))
            }
            b'b' => {
                // BUILD: set state on the object below; we keep the object as is.
                pop(&mut stack)?;
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(Item::V(Node::leaf(persistent_load(pid.v)?)))
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                // The result holds at most the arguments.
                let (depth, weight) = (args.depth + 1, args.weight + 1);
                stack.push(Item::V(Node { v: reduce(callable.v, args.v)?, depth, weight }))
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {}", *pos - 1)),
        }
    }
}

fn persistent_load(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else { return Err("persistent id is not a tuple".into()) };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(_, dtype), Value::Str(key), _location, Value::Int(numel), ..]
            if kind == "storage" =>
        {
            Ok(Value::Storage(StorageRef { dtype: dtype.clone(), key: key.clone(), numel: *numel }))
        }
        _ => {
            // At most 200 characters (String::truncate would panic inside one).
            let shown: String = format!("{items:?}").chars().take(200).collect();
            Err(format!("unsupported persistent id {shown}"))
        }
    }
}

fn ints(v: &Value) -> Result<Vec<i64>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) => Ok(*n),
                _ => Err("expected an int in a tensor's size or stride".to_string()),
            })
            .collect(),
        _ => Err("expected a tuple of ints as a tensor's size or stride".to_string()),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = callable else {
        return Ok(Value::Object("<call of a non-global>".into()));
    };
    let args = match args {
        Value::Tuple(a) => a,
        other => vec![other],
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => match args.as_slice() {
            [Value::Storage(s), Value::Int(offset), size, stride, ..] => Ok(Value::Tensor(TensorRef {
                storage: s.clone(),
                offset: *offset,
                size: ints(size)?,
                stride: ints(stride)?,
            })),
            _ => Err(format!("unexpected arguments to {module}.{name}")),
        },
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
            args.into_iter().next().ok_or_else(|| "empty _rebuild_parameter".to_string())
        }
        _ => Ok(Value::Object(format!("{module}.{name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_persistent_id_with_a_long_non_ascii_text_is_an_error_not_a_panic() {
        // Found by the_legacy_reader_never_panics_on_damaged_files: the message
        // was cut at byte 200, inside a two-byte character.
        let id = Value::Tuple(vec![Value::Str(format!("{}{}", "a".repeat(187), "é".repeat(40)))]);
        let e = persistent_load(id).unwrap_err();
        assert!(e.starts_with("unsupported persistent id ") && e.chars().count() <= 226, "{e}");
    }

    #[test]
    fn reads_a_dict_of_ints_strings_and_tuples() {
        // pickle.dumps({'a': 1, 'b': ('x', 300, -2)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02X\x01\x00\x00\x00xq\x03M,\x01J\xfe\xff\xff\xff\x87q\x04u.";
        let mut pos = 0;
        let v = read_pickle(data, &mut pos).unwrap();
        assert_eq!(pos, data.len());
        assert_eq!(
            v,
            Value::Dict(vec![
                (Value::Str("a".into()), Value::Int(1)),
                (Value::Str("b".into()), Value::Tuple(vec![Value::Str("x".into()), Value::Int(300), Value::Int(-2)])),
            ])
        );
    }

    #[test]
    fn deep_nesting_and_memo_amplification_are_refused_within_budgets() {
        // 1 followed by a million TUPLE1s: a value a million levels deep.
        let mut deep = b"\x80\x02K\x01".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        deep.push(b'.');
        let e = read_pickle(&deep, &mut 0).unwrap_err();
        assert!(e.contains("nest deeper"), "{e}");
        // A list, memoized, then itself twice in a new list, memoized, ...:
        // each step doubles the size of the value (2^40 after 40 steps).
        let mut doubling = b"\x80\x02]q\x00".to_vec();
        for i in 0..40u8 {
            doubling.extend([b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        doubling.push(b'.');
        let e = read_pickle(&doubling, &mut 0).unwrap_err();
        assert!(e.contains("copies its own values"), "{e}");
        // Lengths that would overflow the position.
        let mut huge = b"\x80\x02\x8d".to_vec();
        huge.extend(u64::MAX.to_le_bytes());
        assert!(read_pickle(&huge, &mut 0).unwrap_err().contains("ends early"));
    }

    #[test]
    fn refuses_unknown_opcodes_without_panicking() {
        let mut pos = 0;
        let e = read_pickle(b"\x80\x02\xff.", &mut pos).unwrap_err();
        assert!(e.contains("0xff"), "{e}");
        let mut pos = 0;
        assert!(read_pickle(b"\x80\x02}q", &mut pos).unwrap_err().contains("ends early"));
    }
}
