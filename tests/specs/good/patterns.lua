-- patterns.lua — the sandbox's string.find, match, gmatch, gsub (generator/pattern.lua, in Lua)
-- and table.insert, remove, move, sort (generator/sandbox.lua) give what Lua's C library gives:
-- each expected value below was computed by Lua 5.4's own functions.
local function show(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    t[i] = type(v) == "string" and string.format("%q", v):gsub("\\\n", "\\n") or tostring(v)
  end
  return table.concat(t, ", ")
end
local function gm(s, p) local out = {} for a, b in string.gmatch(s, p) do out[#out + 1] = tostring(a) .. "|" .. tostring(b) end return table.concat(out, ";") end
local n = 0
local function check(got, want) n = n + 1 if got ~= want then error(string.format("case %d: got %s, want %s", n, got, want)) end end
local C = {
  { "a(cb )(", "$%A%a", "nil", "nil", "", "\"a(cb )(\", 0" },
  { "ax1ac).(", "%A-()", "1, 0, 1", "1", "1|nil;2|nil;3|nil;4|nil;5|nil;6|nil;7|nil;8|nil;9|nil", "\"<>a<>x<>1<>a<>c<>)<>.<>(<>\", 9" },
  { ".aa", "%db)%a-[^a]", "nil", "nil", "", "\".aa\", 0" },
  { "x cxb(1a(", "?%f[%a]()[ab]%.*", "nil", "nil", "", "\"x cxb(1a(\", 0" },
  { "cxb.xxx ", "+*a", "nil", "nil", "", "\"cxb.xxx \", 0" },
  { "ca cax.%c", "%s[^a]%.*", "3, 4", "\" c\"", " c|nil", "\"ca< c>ax.%c\", 1" },
  { "(1", "^(%d$[a-c]", "nil", "nil", "", "\"(1\", 0" },
  { "Ax", "-", "nil", "nil", "", "\"Ax\", 0" },
  { "%x%%b", "%A", "1, 1", "\"%\"", "%|nil;%|nil;%|nil", "\"<%>x<%><%>b\", 3" },
  { "axA .b( )", "%s", "4, 4", "\" \"", " |nil; |nil", "\"axA< >.b(< >)\", 2" },
  { ")%bcx(", "+%A", "nil", "nil", "", "\")%bcx(\", 0" },
  { "(x%%.", "%b()%A?^?)", "nil", "nil", "", "\"(x%%.\", 0" },
  { "%)aa1( )11", "+b", "nil", "nil", "", "\"%)aa1( )11\", 0" },
  { ".c aa", "%%%f[%a]", "nil", "nil", "", "\".c aa\", 0" },
  { "1% )A....x", "[^a]%a", "4, 5", "\")A\"", ")A|nil;.x|nil", "\"1% <)A>...<.x>\", 2" },
  { "%", "[ab]%s%s(%.%A", "nil", "nil", "", "\"%\", 0" },
  { "1 1a A()cc", "+x?-[a-c].", "nil", "nil", "", "\"1 1a A()cc\", 0" },
  { " ) b(", ".", "1, 1", "\" \"", " |nil;)|nil; |nil;b|nil;(|nil", "\"< ><)>< ><b><(>\", 5" },
  { "c%cc b%", ".$-%s", "4, 5", "\"c \"", "c |nil", "\"c%c<c >b%\", 1" },
  { "  x.AAa(", "?", "nil", "nil", "", "\"  x.AAa(\", 0" },
  { "ba.).x .%", "*[ab]", "nil", "nil", "", "\"ba.).x .%\", 0" },
  { "bx%", "(%%^", "nil", "nil", "", "\"bx%\", 0" },
  { "c", "%%", "nil", "nil", "", "\"c\", 0" },
  { "1", "%s-%d.", "nil", "nil", "", "\"1\", 0" },
  { "b1", "[a-c]", "1, 1", "\"b\"", "b|nil", "\"<b>1\", 1" },
  { "a.x1a%1x", "%w", "1, 1", "\"a\"", "a|nil;x|nil;1|nil;a|nil;1|nil;x|nil", "\"<a>.<x><1><a>%<1><x>\", 6" },
  { "(accaA)xb", "()%s%wx.()", "nil", "nil", "", "\"(accaA)xb\", 0" },
  { "))).b%c ))", "*a%f[%a]%f[%a] ", "nil", "nil", "", "\"))).b%c ))\", 0" },
  { "", "^[a-c]x^%.%d", "nil", "nil", "", "\"\", 0" },
  { "c", "?.(", "nil", "nil", "", "\"c\", 0" },
  { "xx", "-%s", "nil", "nil", "", "\"xx\", 0" },
  { "Aa.a(bx", "$%s%.b)", "nil", "nil", "", "\"Aa.a(bx\", 0" },
  { "1AxA c1 a", "$[^a]%s%sa[^a]", "nil", "nil", "", "\"1AxA c1 a\", 0" },
  { "", "*%w", "nil", "nil", "", "\"\", 0" },
  { "a%Ac.", "$b%.", "nil", "nil", "", "\"a%Ac.\", 0" },
  { ".11b .(%", "[ab] %f[%a]^a%w", "nil", "nil", "", "\".11b .(%\", 0" },
  { "Abb%a%", "[^a][^a]%b()", "nil", "nil", "", "\"Abb%a%\", 0" },
  { ".a.x%%c", "b%.%%%s", "nil", "nil", "", "\".a.x%%c\", 0" },
  { "A x1b", "%b() +%A$%%", "nil", "nil", "", "\"A x1b\", 0" },
  { "1 ccbc", "%b()x[a-c]$", "nil", "nil", "", "\"1 ccbc\", 0" },
  { "Ab1).x%(", " %dx", "nil", "nil", "", "\"Ab1).x%(\", 0" },
  { "a", "%f[%a]?%%%A.%b()", "nil", "nil", "", "\"a\", 0" },
  { ".1..)", "[ab]-*.%f[%a]", "nil", "nil", "", "\".1..)\", 0" },
  { "1A", "%w", "1, 1", "\"1\"", "1|nil;A|nil", "\"<1><A>\", 2" },
  { "x( .bA", "()^%s%f[%a]", "nil", "nil", "", "\"x( .bA\", 0" },
  { "A.A%", "x x", "nil", "nil", "", "\"A.A%\", 0" },
  { "A.", "%a%b()", "nil", "nil", "", "\"A.\", 0" },
  { "b AcA", "+", "nil", "nil", "", "\"b AcA\", 0" },
  { " ", "%A[ab]%%-%s", "nil", "nil", "", "\" \", 0" },
  { ".", "$", "2, 1", "\"\"", "|nil", "\".<>\", 1" },
  { "A11", " ?", "1, 0", "\"\"", "|nil;|nil;|nil;|nil", "\"<>A<>1<>1<>\", 4" },
  { ".%xc", "$x%%%a%%x", "nil", "nil", "", "\".%xc\", 0" },
  { ".a  %bb", " [^a]%ax%b()%a", "nil", "nil", "", "\".a  %bb\", 0" },
  { "ca%x ", "-", "nil", "nil", "", "\"ca%x \", 0" },
  { "b aAAa", "%%[a-c]", "nil", "nil", "", "\"b aAAa\", 0" },
  { "1%", "[^a]%.%a%w", "nil", "nil", "", "\"1%\", 0" },
  { "x.Axb.(c ", "a%A^%d%Aa", "nil", "nil", "", "\"x.Axb.(c \", 0" },
  { "x1x %%", "[ab].+%w%.", "nil", "nil", "", "\"x1x %%\", 0" },
  { "b", "[^a]x*%%+", "nil", "nil", "", "\"b\", 0" },
  { ".)1) ", "%A%A%s", "3, 5", "\"1) \"", "1) |nil", "\".)<1) >\", 1" },
  { "cx", "+.$%A%b()+", "nil", "nil", "", "\"cx\", 0" },
  { "ab.A))(x(%", "%w%b().%.", "nil", "nil", "", "\"ab.A))(x(%\", 0" },
  { "Ab 1.).Abx", "a%f[%a]+%b()%.%s", "nil", "nil", "", "\"Ab 1.).Abx\", 0" },
  { "11aA(A)1))", "[a-c]a", "nil", "nil", "", "\"11aA(A)1))\", 0" },
  { ")", "[a-c]()", "nil", "nil", "", "\")\", 0" },
  { "()b)Aa%", "%w%%^)x.", "nil", "nil", "", "\"()b)Aa%\", 0" },
  { "a1(.", "%d%f[%a]?", "nil", "nil", "", "\"a1(.\", 0" },
  { "", "(%.%d%%(b", "nil", "nil", "", "\"\", 0" },
  { ")acbA ", "%s", "6, 6", "\" \"", " |nil", "\")acbA< >\", 1" },
  { "c ca1a(", "x", "nil", "nil", "", "\"c ca1a(\", 0" },
  { "caA11a%Aaa", "%a-", "1, 0", "\"\"", "|nil;|nil;|nil;|nil;|nil;|nil;|nil;|nil;|nil;|nil;|nil", "\"<>c<>a<>A<>1<>1<>a<>%<>A<>a<>a<>\", 11" },
  { "c1%c1c", "a*", "1, 0", "\"\"", "|nil;|nil;|nil;|nil;|nil;|nil;|nil", "\"<>c<>1<>%<>c<>1<>c<>\", 7" },
  { "1) ccabA(", "%f[%a]%d%a*", "nil", "nil", "", "\"1) ccabA(\", 0" },
  { "a.1)", "%a[^a]", "1, 2", "\"a.\"", "a.|nil", "\"<a.>1)\", 1" },
  { "1c)(aa. x(", "$", "11, 10", "\"\"", "|nil", "\"1c)(aa. x(<>\", 1" },
  { "1", "$+^%dbb", "nil", "nil", "", "\"1\", 0" },
  { ".Axc1ax)", "[a-c]^[a-c]%w^", "nil", "nil", "", "\".Axc1ax)\", 0" },
  { "x1%baA%a", " ()", "nil", "nil", "", "\"x1%baA%a\", 0" },
  { ")", "%b()%s", "nil", "nil", "", "\")\", 0" },
  { "a(aA ((", "%a%f[%a]))[^a]", "nil", "nil", "", "\"a(aA ((\", 0" },
  { "a", "-%A%..+", "nil", "nil", "", "\"a\", 0" },
  { "( ", "%s%.%d()", "nil", "nil", "", "\"( \", 0" },
  { "a", "ab", "nil", "nil", "", "\"a\", 0" },
  { ".AAx)%.(", "[^a]%f[%a]", "1, 1", "\".\"", ".|nil", "\"<.>AAx)%.(\", 1" },
  { "1x%)b(", "%f[%a].[a-c]^", "nil", "nil", "", "\"1x%)b(\", 0" },
  { "%c", "*%b()*[ab]%%$", "nil", "nil", "", "\"%c\", 0" },
  { "bAx", "%w%s", "nil", "nil", "", "\"bAx\", 0" },
  { "ac.% ", "a?.%db%b()", "nil", "nil", "", "\"ac.% \", 0" },
  { " x(x", "%A", "1, 1", "\" \"", " |nil;(|nil", "\"< >x<(>x\", 2" },
  { "c%", "^%w.", "1, 2", "\"c%\"", "", "\"<c%>\", 1" },
  { "bx.", "()%w", "1, 1, 1", "1", "1|nil;2|nil", "\"<b><x>.\", 2" },
  { "c", "()a", "nil", "nil", "", "\"c\", 0" },
  { "Ac1.b)%", " b?", "nil", "nil", "", "\"Ac1.b)%\", 0" },
  { "(bbxA", "+%w", "nil", "nil", "", "\"(bbxA\", 0" },
  { "", "%s[^a]", "nil", "nil", "", "\"\", 0" },
  { "A", "*[ab]*%a", "nil", "nil", "", "\"A\", 0" },
  { ")c%(.Ac%", "x^$%f[%a]%b()", "nil", "nil", "", "\")c%(.Ac%\", 0" },
  { "A", "%w%Ab", "nil", "nil", "", "\"A\", 0" },
  { ".%A)", "%d[a-c]^%d", "nil", "nil", "", "\".%A)\", 0" },
  { "babx%A", "+%d%d$b", "nil", "nil", "", "\"babx%A\", 0" },
  { "", "[^a]?[ab]b", "nil", "nil", "", "\"\", 0" },
  { ".x.", "[ab]$+%s", "nil", "nil", "", "\".x.\", 0" },
  { "", "?%.%b() ", "nil", "nil", "", "\"\", 0" },
  { "x%1   ..cA", ".x%A", "nil", "nil", "", "\"x%1   ..cA\", 0" },
  { "accA%(%.b ", "%A%b() -?", "nil", "nil", "", "\"accA%(%.b \", 0" },
  { "", "^x%f[%a]%f[%a]%ab", "nil", "nil", "", "\"\", 0" },
  { " A a(xa%", "?[^a]%A).a", "nil", "nil", "", "\" A a(xa%\", 0" },
  { ".bA )a", "*", "nil", "nil", "", "\".bA )a\", 0" },
  { "11)xa.", "x*%.a", "nil", "nil", "", "\"11)xa.\", 0" },
  { " ax) ", "%w ", "nil", "nil", "", "\" ax) \", 0" },
  { "1%1", "^", "1, 0", "\"\"", "", "\"<>1%1\", 1" },
  { "Aa%Aa%", "[a-c]*", "1, 0", "\"\"", "|nil;a|nil;|nil;a|nil;|nil", "\"<>A<a>%<>A<a>%<>\", 5" },
  { "c", "%d%a", "nil", "nil", "", "\"c\", 0" },
  { "%%(%1A", ".(%f[%a]%d", "nil", "nil", "", "\"%%(%1A\", 0" },
  { "(.%()x", "[^a](%b())", "3, 5, \"()\"", "\"()\"", "()|nil", "\"(.<%()>x\", 1" },
  { "1)%", " *%d", "1, 1", "\"1\"", "1|nil", "\"<1>)%\", 1" },
  { ".1x1cAxAbc", "%Ab-*%sx", "nil", "nil", "", "\".1x1cAxAbc\", 0" },
  { "", "(a", "nil", "nil", "", "\"\", 0" },
  { "AA c1", "[^a]%f[%a]b-", "3, 3", "\" \"", " |nil", "\"AA< >c1\", 1" },
  { " cxacc", "%.?[^a]", "1, 1", "\" \"", " |nil;c|nil;x|nil;c|nil;c|nil", "\"< ><c><x>a<c><c>\", 5" },
  { "b. b ca%xa", "?%b()", "nil", "nil", "", "\"b. b ca%xa\", 0" },
  { "Ab.c.%aac)", "?[^a]^([^a][ab]", "nil", "nil", "", "\"Ab.c.%aac)\", 0" },
  { "%(bb (.", "^%b()%f[%a]%A(", "nil", "nil", "", "\"%(bb (.\", 0" },
  { "%Aa.ca(", "[a-c]*", "1, 0", "\"\"", "|nil;|nil;a|nil;ca|nil;|nil", "\"<>%<>A<a>.<ca>(<>\", 5" },
  { "((b Aa) ", "%%)%s()", "nil", "nil", "", "\"((b Aa) \", 0" },
  { " ", "%b()b[a-c]$%A", "nil", "nil", "", "\" \", 0" },
  { " a)", "a+($-%a", "nil", "nil", "", "\" a)\", 0" },
  { " ", "$%ax", "nil", "nil", "", "\" \", 0" },
  { ".%cx)", "x%.%d", "nil", "nil", "", "\".%cx)\", 0" },
  { "bc%", "%s[^a]+", "nil", "nil", "", "\"bc%\", 0" },
  { "a.( xbaa.", "-%s%w[ab]%s%A", "nil", "nil", "", "\"a.( xbaa.\", 0" },
  { "%bb)xc(x", "^", "1, 0", "\"\"", "", "\"<>%bb)xc(x\", 1" },
  { "1xc b% ", "+.a(a", "nil", "nil", "", "\"1xc b% \", 0" },
  { "ac)(cca ", "[ab]x", "nil", "nil", "", "\"ac)(cca \", 0" },
  { "b", ".$)%w%sx", "nil", "nil", "", "\"b\", 0" },
  { "Ax(1% (%", "-^%b()x[^a]*", "nil", "nil", "", "\"Ax(1% (%\", 0" },
  { ".A", "%%%w%%%d", "nil", "nil", "", "\".A\", 0" },
  { ") A1A(b", "$ a%b()", "nil", "nil", "", "\") A1A(b\", 0" },
  { ".a%c A1", "?b$()", "nil", "nil", "", "\".a%c A1\", 0" },
  { "c1 b).", "()%.%b())()", "nil", "nil", "", "\"c1 b).\", 0" },
  { " %bAaAb", "%A[^a]", "1, 2", "\" %\"", " %|nil", "\"< %>bAaAb\", 1" },
  { "", "%d.", "nil", "nil", "", "\"\", 0" },
  { "(1a.((A))(", "%%[^a]()[^a]-%%", "nil", "nil", "", "\"(1a.((A))(\", 0" },
  { "A.(xcb", "x%b()", "nil", "nil", "", "\"A.(xcb\", 0" },
  { "1", "%d()x", "nil", "nil", "", "\"1\", 0" },
  { "(a", "[ab]-b*%a", "2, 2", "\"a\"", "a|nil", "\"(<a>\", 1" },
  { ".%x%%A.", "$bx", "nil", "nil", "", "\".%x%%A.\", 0" },
  { "A(aa.x", "a-+()", "nil", "nil", "", "\"A(aa.x\", 0" },
  { ")1 ( a%", "%f[%a]", "6, 5", "\"\"", "|nil", "\")1 ( <>a%\", 1" },
  { ")1%", "%A%a", "nil", "nil", "", "\")1%\", 0" },
}
for _, c in ipairs(C) do
  check(show(string.find(c[1], c[2])), c[3])
  check(show(c[1]:match(c[2])), c[4])
  check(gm(c[1], c[2]), c[5])
  check(show(string.gsub(c[1], c[2], "<%0>")), c[6])
end
check(show(string.find("hello world", "o", 6)), "8, 8")
check(show(string.find("a.b", ".", 1, true)), "2, 2")
check(show(string.find("abc", "b", -1)), "nil")
check(show(string.match("  trim  ", "^%s*(.-)%s*$")), "\"trim\"")
check(show(string.match("key = value", "(%w+)%s*=%s*(%w+)")), "\"key\", \"value\"")
check(show(string.match("hello", "()ll()")), "3, 5")
check(show(string.match("f(a(b)c)d", "%b()")), "\"(a(b)c)\"")
check(show(string.match("THE (quick) fox", "%f[%a]%a+", 5)), "\"quick\"")
check(show(string.gsub("hello world", "(o)", "[%1%1]")), "\"hell[oo] w[oo]rld\", 2")
check(show(string.gsub("hello world", "%w+", "%0 %0", 1)), "\"hello hello world\", 1")
check(show(string.gsub("abc", "", "-")), "\"-a-b-c-\", 4")
check(show(string.gsub("hello", "l", { l = "L" })), "\"heLLo\", 2")
check(show(string.gsub("a1b2", "%d", function(d) return d * 2 end)), "\"a2b4\", 2")
check(show(string.gsub("x=1 y=2", "(%w+)=(%w+)", "%2=%1")), "\"1=x 2=y\", 2")
check(show(string.gsub("abc", "^a", "A")), "\"Abc\", 1")
check(show(string.gsub("aXa", "(a)%u%1", "%%")), "\"%\", 1")
check(show(string.rep("ab", 3, ",")), "\"ab,ab,ab\"")
check(show(string.rep("", 5)), "\"\"")
check(show(string.rep("x", 0)), "\"\"")
check((function() local t = { 1, 2, 3 } table.insert(t, 4) table.insert(t, 1, 0) table.insert(t, 3, 9) return table.concat(t, ",") end)(), "0,1,9,2,3,4")
check((function() local t = { 1, 2, 3, 4 } local r = table.remove(t) local q = table.remove(t, 1) return table.concat(t, ",") .. ";" .. r .. ";" .. q end)(), "2,3;4;1")
check((function() local t = {} local r = table.remove(t) return tostring(r) .. #t end)(), "nil0")
check((function() local t = { 1, 2, 3, 4, 5 } table.move(t, 2, 4, 1) return table.concat(t, ",") end)(), "2,3,4,4,5")
check((function() local t = { 1, 2, 3, 4, 5 } table.move(t, 1, 3, 3) return table.concat(t, ",") end)(), "1,2,1,2,3")
check((function() local t = table.move({ 1, 2, 3 }, 1, 3, 2, { 9 }) return table.concat(t, ",") end)(), "9,1,2,3")
check((function() local t = { 5, 3, 8, 1, 9, 2, 7 } table.sort(t) return table.concat(t, ",") end)(), "1,2,3,5,7,8,9")
check((function() local t = { 5, 3, 8, 1, 9, 2, 7 } table.sort(t, function(a, b) return a > b end) return table.concat(t, ",") end)(), "9,8,7,5,3,2,1")
check((function() local t = { "pear", "apple", "fig" } table.sort(t) return table.concat(t, ",") end)(), "apple,fig,pear")
return model { name = "patterns", input = 2, seq_len = 4, recurrent = { gru(n % 7 + 2) } }
