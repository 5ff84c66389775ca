"""dassl.data.samplers: the torch Random/Sequential samplers plus Dassl's domain- and class-balanced ones."""
import copy
import random
from collections import defaultdict

from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

from ..choices import SAMPLERS

AVAI_SAMPLERS = list(SAMPLERS)


class RandomDomainSampler(Sampler):
    """Each batch holds batch_size // n_domain items from each of n_domain randomly chosen domains."""

    def __init__(self, data_source, batch_size, n_domain):
        self.data_source = data_source
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = list(self.domain_dict.keys())
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"RandomDomainSampler: batch size {batch_size} is not divisible by n_domain {n_domain}")
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs = []
        stop_sampling = False
        while not stop_sampling:
            for domain in random.sample(self.domains, self.n_domain):
                idxs = domain_dict[domain]
                selected = random.sample(idxs, self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop_sampling = True
        return iter(final_idxs)

    def __len__(self):
        return self.length


class SeqDomainSampler(Sampler):
    """Each batch holds an equal number of items from every domain, in data order within a domain."""

    def __init__(self, data_source, batch_size):
        self.data_source = data_source
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = sorted(self.domain_dict.keys())
        n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"SeqDomainSampler: batch size {batch_size} is not divisible by {n_domain} domains")
        self.n_img_per_domain = batch_size // n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        final_idxs = []
        pointers = {d: 0 for d in self.domains}
        while all(pointers[d] + self.n_img_per_domain <= len(self.domain_dict[d]) for d in self.domains):
            for d in self.domains:
                start = pointers[d]
                final_idxs.extend(self.domain_dict[d][start:start + self.n_img_per_domain])
                pointers[d] += self.n_img_per_domain
        return iter(final_idxs)

    def __len__(self):
        return self.length


class RandomClassSampler(Sampler):
    """Each batch holds n_ins items from each of batch_size // n_ins randomly chosen classes."""

    def __init__(self, data_source, batch_size, n_ins):
        if batch_size < n_ins:
            raise ValueError(f"RandomClassSampler: batch size {batch_size} must be >= n_ins {n_ins}")
        self.data_source = data_source
        self.batch_size = batch_size
        self.n_ins = n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = defaultdict(list)
        for index, item in enumerate(data_source):
            self.index_dic[item.label].append(index)
        self.labels = list(self.index_dic.keys())
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError("RandomClassSampler: fewer classes than classes per batch")
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        batch_idxs_dict = defaultdict(list)
        for label in self.labels:
            idxs = copy.deepcopy(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = random.choices(idxs, k=self.n_ins)
            random.shuffle(idxs)
            batch_idxs = []
            for idx in idxs:
                batch_idxs.append(idx)
                if len(batch_idxs) == self.n_ins:
                    batch_idxs_dict[label].append(batch_idxs)
                    batch_idxs = []
        avai_labels = copy.deepcopy(self.labels)
        final_idxs = []
        while len(avai_labels) >= self.ncls_per_batch:
            for label in random.sample(avai_labels, self.ncls_per_batch):
                final_idxs.extend(batch_idxs_dict[label].pop(0))
                if len(batch_idxs_dict[label]) == 0:
                    avai_labels.remove(label)
        return iter(final_idxs)

    def __len__(self):
        return self.length


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=2):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ValueError(f"Unknown sampler type {sampler_type!r}; choose one of {AVAI_SAMPLERS}")
