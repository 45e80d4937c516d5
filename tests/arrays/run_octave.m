function run_octave(listing)
% run_octave  The Octave half of tests/arrays/run.py: for every case named
% in the file listing (the current directory holds NAME.m and NAME.json,
% written by arraycase), call NAME on the inputs, compare every result with
% the internal evaluator's (relative 1e-10, or the accuracy the evaluator
% itself has in double where that is worse) and every derivative with
% central differences of NAME itself.  A line of listing is "NAME TOL FD":
% the relative tolerance, and whether to take finite differences (0 for a
% case built to be ill-conditioned).  Prints "OK NAME" or
% "FAIL NAME why" per case.
  names = strsplit(strtrim(fileread(listing)), "\n");
  for c = 1:numel(names)
    words = strsplit(strtrim(names{c}), ' ');
    name = words{1};
    if isempty(name)
      continue;
    end
    try
      why = run_case(name, str2double(words{2}), str2double(words{3}));
    catch err
      why = ['raised: ' strrep(err.message, "\n", ' ')];
    end
    if isempty(why)
      printf('OK %s\n', name);
    else
      printf('FAIL %s %s\n', name, why);
    end
  end
end

function why = run_case(name, tol, do_fd)
  why = '';
  data = jsondecode(fileread([name '.json']));
  nin = numel(data.inputs);
  args = cell(1, nin);
  for i = 1:nin
    args{i} = value_of(data.inputs(i).value);
  end
  for k = 0:data.funcs - 1
    a = 0.7 + 0.3 * k;
    b = 0.4 + 0.5 * k;
    args{end + 1} = @(x, m) a ^ m * sin(a * x + b + m * pi / 2);
  end
  nres = numel(data.results);
  out = cell(1, nres);
  [out{:}] = feval(name, args{:});
  for i = 1:nres
    r = data.results(i);
    want = value_of(r);
    got = out{i};
    if ~isequal(size(got), size(want))
      why = sprintf('result %d has size %s, expected %s', i - 1, mat2str(size(got)), mat2str(size(want)));
      return;
    end
    e = max(abs(got(:) - want(:))) / max(max(abs(want(:))), 1e-4);
    if ~(e <= max(tol, 100 * r.cond))
      why = sprintf('result %d: relative error %.2e', i - 1, e);
      return;
    end
  end
  if ~do_fd
    return;
  end
  % finite differences of the code's own outputs (pairs: 0-based result,
  % output differentiated, input)
  nv = data.nwrt;
  pairs = zeros(0, 3);
  for i = 1:nv
    pairs(end + 1, :) = [i, 0, data.wrt(i)];
  end
  if strcmp(data.kind, 'hessian')
    for i = 1:nv
      for j = 1:nv
        pairs(end + 1, :) = [nv + (i - 1) * nv + j, i, data.wrt(j)];
      end
    end
  end
  rand('seed', 7);
  if size(pairs, 1) > 6
    % at most 6 derivatives per case, as run.py
    pairs = pairs(sort(randperm(size(pairs, 1), 6)), :);
  end
  worst = 0;
  for p = 1:size(pairs, 1)
    res = pairs(p, 1) + 1;
    o = pairs(p, 2) + 1;
    j = pairs(p, 3) + 1;
    x = args{j};
    d = rand(size(x)) - 0.5;
    if strcmp(data.inputs(j).kind, 'symmetric')
      d = (d + d') / 2;
    end
    M = reshape(out{res}, numel(out{o}), numel(x));
    pred = M * d(:);
    best = Inf;
    settled = false;
    prev = [];
    for h = [1e-2, 1e-3, 1e-4]
      fa = output_at(name, args, j, x + h * d, o, nres);
      fb = output_at(name, args, j, x - h * d, o, nres);
      fc = output_at(name, args, j, x + h / 2 * d, o, nres);
      fe = output_at(name, args, j, x - h / 2 * d, o, nres);
      fd = (4 * (fc - fe) / h - (fa - fb) / (2 * h)) / 3;
      scale = max([max(abs(pred)), max(abs(fd)), 1e-8]);
      % the values' rounding floor, as in run.py
      floor_ = 8 * eps * max(abs([fa; fb; fc; fe])) / h;
      e = max(max(abs(fd - pred)) - floor_, 0) / scale;
      if isfinite(e)
        best = min(best, e);
        if ~isempty(prev) && max(abs(prev - fd)) <= 1e-8 * scale
          settled = true;
        end
        prev = fd;
      end
    end
    % differences that never settle say nothing (run.py)
    if best > 1e-5 && ~settled
      continue;
    end
    worst = max(worst, best);
  end
  if ~(worst <= 1e-5)
    why = sprintf('finite differences: %.2e', worst);
  end
end

function v = output_at(name, args, j, x, o, nres)
  args{j} = x;
  out = cell(1, nres);
  [out{:}] = feval(name, args{:});
  v = out{o};
  v = v(:);
end

function v = value_of(m)
  v = reshape(m.v, m.rows, m.cols);
end
